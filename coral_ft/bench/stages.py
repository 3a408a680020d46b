"""The stages of one bench trial: train (or fine-tune, or take the base) -> guidance sweep ->
sample -> evaluate, each resumable through a marker file. Every stage takes the bench's frozen
context (coral_ft.bench.context) and the trial.

Metric networks run on the main process only; the other processes of an `accelerate launch`
train and sample their shares and wait for its decisions (the chosen W) at barriers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from coral_ft.bench.context import BenchContext
from coral_ft.bench.cost import RunCost, measure_training
from coral_ft.bench.plan import SELECTION_SEED_OFFSET, Trial
from coral_ft.checkpoint.layout import RunDir
from coral_ft.files import write_text_atomically
from coral_ft.metrics.fid import MIN_SAMPLES

PER_CLASS_MIN_SAMPLES = 10  # fewer samples of a class make its FID meaningless: skip per-class FID
CONDITIONAL_SUBDIR = "conditional"  # finetune: the base with a zero-initialised class embedding


def write_json(path: Path, info: dict) -> None:
    """Atomically: a marker or result is complete on disk or absent."""
    write_text_atomically(path, json.dumps(info, indent=1, default=float))


def _marker(trial: Trial, stage: str) -> Path:
    return trial.folder / f"{stage}.done.json"


# -- train ----------------------------------------------------------------------------------------
def train_stage(ctx: BenchContext, trial: Trial) -> Path:
    """The trial's model folder: trained from scratch, fine-tuned from its base, or (the `base`
    arm) the base itself as a class-conditional model. Records the training's cost."""
    marker = _marker(trial, "train")
    if marker.is_file():
        return Path(json.loads(marker.read_text())["model"])
    from coral_ft.finetune.source import FinetuneSource
    from coral_ft.train.trainer import train

    cost = None
    if trial.trains:
        source = FinetuneSource(trial.config.finetune) if trial.role == "arm" else None
        # --resume starts a run that has no checkpoint yet, and continues one that has.
        with measure_training(ctx.device) as measured:
            model_dir = train(trial.config, trial.run_dir, resume=True, source=source, progress=ctx.progress,
                              announce=False)
        cost = RunCost.of_run(RunDir(trial.run_dir), measured)
    if trial.role == "base":
        model_dir = conditional_base(ctx, trial)
    if ctx.is_main:
        write_json(marker, {"model": str(model_dir), "steps": trial.config.train.max_steps if trial.trains else 0,
                            "processes": ctx.accelerator.num_processes, "cost": asdict(cost) if cost else None})
    ctx.accelerator.wait_for_everyone()
    return model_dir


def conditional_base(ctx: BenchContext, trial: Trial) -> Path:
    """The base as the arms start from it: its own model folder when it is a class-conditional
    diffusers U-Net, else (an unconditional base, a peers' checkpoint) the fine-tuning source's
    U-Net at step 0, saved once: a class embedding added at zero predicts as the base does."""
    from coral_ft.checkpoint.model import ModelInfo, save_model
    from coral_ft.finetune.source import FinetuneSource
    from coral_ft.models.presets import num_classes_of
    from coral_ft.models.unets import load_unet

    spec = ctx.plan.config.bench.finetune.base or str(trial.run_dir)
    source = FinetuneSource(replace(trial.config.finetune, base=spec, lora=False))
    source.locate()
    if source.base_folder is not None and num_classes_of(load_unet(source.base_folder)) is not None:
        return source.base_folder
    folder = trial.folder / CONDITIONAL_SUBDIR
    if ctx.is_main and not (folder / "config.json").is_file():
        unet = source.build(ctx.data, trial.config)
        info = ModelInfo(ctx.data.class_names, trial.config.data.dataset,
                         {"method": "base", "class_counts": ctx.counts, "sample": trial.config.to_dict()["sample"],
                          "added_class_embedding": source.added_class_embedding})
        save_model(folder, unet, source.scheduler(trial.config), info)
    ctx.accelerator.wait_for_everyone()
    return folder


# -- sample ---------------------------------------------------------------------------------------
def _sample(ctx: BenchContext, model_dir: Path, path: Path, num: int, settings) -> None:
    from coral_ft.sample.run import sample_to_npz

    sample_to_npz(model_dir, path, num, settings, accelerator=ctx.accelerator, progress=ctx.progress)


def sweep_stage(ctx: BenchContext, trial: Trial, model_dir: Path) -> Trial:
    """Paper Figure 8's protocol: sample a selection set (its own sampling seed) at each W of the
    sweep, pick the W with the lowest FID -> the trial, its config's sample.guidance the chosen W.
    The reported samples are drawn afterwards, with the reported seed, at that W: nothing is
    selected on the samples that are reported."""
    from coral_ft.metrics.evaluation import evaluate

    plan = ctx.plan
    if not plan.sweep:
        return trial
    folder = trial.folder / "selection"
    result_path = folder / "selection.json"
    if not result_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        base = replace(trial.config.sample, labels=plan.label_mode, seed=trial.config.sample.seed + SELECTION_SEED_OFFSET)
        fids = {}
        for w in plan.sweep:
            path = folder / f"w{w:g}.npz"
            if not path.is_file():
                _sample(ctx, model_dir, path, plan.config.bench.selection_samples, replace(base, guidance=w))
            if ctx.is_main:
                fids[w] = evaluate(path, ctx.reference, ctx.eval_settings(["fid"]), extractor=ctx.metric_net,
                                   device=ctx.device)["metrics"]["fid"]["value"]
        if ctx.is_main:
            best = min(fids, key=lambda w: (fids[w], w))
            write_json(result_path, {"fid": {f"{w:g}": v for w, v in fids.items()}, "chosen": best,
                                     "samples": plan.config.bench.selection_samples, "seed": base.seed})
        ctx.accelerator.wait_for_everyone()
    chosen = float(json.loads(result_path.read_text())["chosen"])
    return replace(trial, config=replace(trial.config, sample=replace(trial.config.sample, guidance=chosen)))


def sample_stage(ctx: BenchContext, trial: Trial, model_dir: Path) -> Path:
    marker, path = _marker(trial, "sample"), trial.folder / "samples.npz"
    if marker.is_file():
        return path
    settings = replace(trial.config.sample, labels=ctx.plan.label_mode)
    _sample(ctx, model_dir, path, ctx.plan.num_samples, settings)
    if ctx.is_main:
        write_json(marker, {"samples": ctx.plan.num_samples, "guidance": settings.guidance, "sampler": settings.sampler,
                            "steps": settings.steps})
    ctx.accelerator.wait_for_everyone()
    return path


# -- evaluate -------------------------------------------------------------------------------------
def has_per_class_samples(labels: np.ndarray, num_classes: int) -> bool:
    counts = np.bincount(labels, minlength=num_classes)
    return counts.size > 0 and int(counts.min()) >= max(PER_CLASS_MIN_SAMPLES, MIN_SAMPLES)


def evaluate_stage(ctx: BenchContext, trial: Trial, samples_path: Path) -> dict:
    """The registry's metrics overall and per group, the classifier's sample accuracy, the memorised
    share, and the trial's grid and memorisation picture; the samples are read once."""
    from coral_ft.metrics.evaluation import evaluate, load_samples
    from coral_ft.metrics.registry import computations_for
    from coral_ft.sample.grid import save_class_grid

    guidance = trial.config.sample.guidance
    samples = load_samples(samples_path)
    num_classes = ctx.data.num_classes
    save_class_grid(samples.images, samples.labels, ctx.data.class_names, trial.folder / "grid.png", ctx.counts,
                    title=f"{trial.name}, W={guidance:g}")
    wanted = computations_for(ctx.plan.metrics)
    if has_per_class_samples(samples.labels, num_classes):
        wanted.append("per-class-fid")
    result = evaluate(samples, ctx.reference, ctx.eval_settings(wanted), extractor=ctx.metric_net, device=ctx.device,
                      groups=ctx.groups.classes)
    result["guidance"] = guidance
    result["groups_rule"] = ctx.groups.rule
    if ctx.metric_net is not None and hasattr(ctx.metric_net, "per_class_accuracy"):
        acc = ctx.metric_net.per_class_accuracy(samples.images, samples.labels, num_classes)
        result["sample_accuracy"] = {"per_class": acc, "mean": float(np.nanmean(acc))}
        for name, classes in ctx.groups.classes.items():
            result["groups"][name]["sample_accuracy"] = float(np.nanmean([acc[c] for c in classes]))
    if ctx.memo is not None:
        result["memorisation"] = memorisation_stage(ctx, trial, samples)
    write_json(trial.folder / "eval.json", result)
    return result


def memorisation_stage(ctx: BenchContext, trial: Trial, samples) -> dict:
    from coral_ft.bench.figures import memorisation_picture
    from coral_ft.metrics.memorisation import memorisation
    from coral_ft.metrics.reference import nchw_to_nhwc

    feats, groups = ctx.memo, ctx.groups
    sample_feats = ctx.feature_net().features(samples.images)
    memo = memorisation(sample_feats, samples.labels, feats["train_features"], feats["train_labels"],
                        feats["heldout_features"], feats["heldout_labels"])
    out = {"rule": "share of samples closer to a training image of their class than the held-out images' "
                   "5th percentile", "groups": {n: memo.share(samples.labels, c) for n, c in groups.classes.items()},
           "overall": memo.share(samples.labels, np.unique(samples.labels))}
    tail = picture_classes(ctx.counts)
    if tail:
        train_images = nchw_to_nhwc(ctx.data.images.numpy())
        memorisation_picture(trial.folder / "memorisation.png", samples, memo, train_images, tail, trial.name,
                             ctx.data.class_names, ctx.counts)
        out["picture"] = "memorisation.png"
    return out


def picture_classes(counts: list[int], limit: int = 3) -> list[int]:
    """The tail classes shown beside their nearest training images: 5-50 training images (where
    memorisation shows first), else the rarest classes."""
    rare = sorted((c for c in range(len(counts)) if 5 <= counts[c] <= 50), key=lambda c: counts[c])
    return (rare or sorted(range(len(counts)), key=lambda c: counts[c]))[:limit]


# -- a whole trial ----------------------------------------------------------------------------
def run_trial(ctx, trial) -> dict | None:
    """One trial's stages (each skipped when its marker exists) -> its evaluation (main process).
    A trial with eval.json is finished, even when its model and samples are gone (a restored one)."""
    done = trial.folder / "eval.json"
    if done.is_file():
        return json.loads(done.read_text()) if ctx.is_main else None
    trial.folder.mkdir(parents=True, exist_ok=True)
    model_dir = train_stage(ctx, trial)
    trial = sweep_stage(ctx, trial, model_dir)
    samples = sample_stage(ctx, trial, model_dir)
    evaluation = evaluate_stage(ctx, trial, samples) if ctx.is_main else None
    ctx.accelerator.wait_for_everyone()
    return evaluation
