"""The stages of one bench trial (train -> guidance sweep -> sample -> evaluate), each resumable
through a marker file, and the shared ones computed once per bench (reference, metric network,
memorisation features).

Metric networks run on the main process only; the other processes of an `accelerate launch`
train and sample their shares and wait for its decisions (the chosen W) at barriers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from coral_ft.bench.groups import Groups
from coral_ft.bench.plan import SELECTION_SEED_OFFSET, BenchPlan, Trial
from coral_ft.errors import UserError
from coral_ft.metrics.fid import MIN_SAMPLES

PER_CLASS_MIN_SAMPLES = 10  # fewer samples of a class make its FID meaningless: skip per-class FID
MEMORISATION_FILE = "memorisation.npz"


def _done(marker: Path) -> bool:
    return marker.is_file()


def write_json(path: Path, info: dict) -> None:
    """Atomically: a marker or result is complete on disk or absent."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, default=float))
    tmp.replace(path)


# -- shared, once per bench -----------------------------------------------------------------------
def reference_images(plan: BenchPlan):
    """The real images every metric compares against: bench.reference_split, else the data set's
    balanced reference split."""
    from coral_ft.metrics.reference import load_reference_images

    d = plan.config.data
    return load_reference_images(f"{d.dataset}:{reference_split(plan)}", d.root, d.image_size)


def reference_split(plan: BenchPlan) -> str:
    """The split the metrics compare against (train-full for CIFAR, test for CelebA-5 and ImageNet-LT)."""
    from coral_ft.data.registry import DATASETS

    return plan.config.bench.reference_split or DATASETS[plan.config.data.dataset].reference_split


def metric_network(plan: BenchPlan, real):
    """The small classifier (digits, Fashion-MNIST, smoke) or None for evaluate()'s TF-Inception / VGG16."""
    if not plan.use_classifier:
        return None
    from coral_ft.bench.classifier import load_or_train

    return load_or_train(plan.out / "classifier.pt", real.images, real.labels, len(real.class_names))


def eval_settings(plan: BenchPlan, computations):
    return replace(plan.config.eval, metrics=list(computations))


def reference_stage(plan: BenchPlan, real, extractor, device: str) -> Path:
    """The reference's features and statistics, computed once for every trial (50k real images
    through Inception and VGG16, or the classifier, cost as much as one trial's evaluation)."""
    from coral_ft.metrics.evaluate import make_reference
    from coral_ft.metrics.registry import computations_for

    path = plan.out / "reference.npz"
    if path.is_file():
        return path
    wanted = computations_for([*plan.metrics, "fid", "kid", "recall"])  # kid, recall: the per-group metrics
    return make_reference(real, path, eval_settings(plan, wanted), extractor=extractor, device=device, progress=True)


def memorisation_features(plan: BenchPlan, extractor, device: str) -> dict | None:
    """Metric-network features of the long-tailed training images and of held-out real images
    (the test split), cached; None when the data set has no held-out split."""
    from coral_ft.data.registry import dataset_from_config
    from coral_ft.metrics.reference import nchw_to_nhwc

    path = plan.out / MEMORISATION_FILE
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    net = extractor or _inception(plan, device)
    try:
        train = dataset_from_config(plan.config.data, "train")
        held = dataset_from_config(plan.config.data, "test")
    except UserError:  # e.g. an image folder: no test split
        return None
    feats = {
        "train_features": net.features(nchw_to_nhwc(train.images.numpy())), "train_labels": train.labels.numpy(),
        "heldout_features": net.features(nchw_to_nhwc(held.images.numpy())), "heldout_labels": held.labels.numpy(),
    }
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **feats)
    tmp.replace(path)
    return feats


def _inception(plan: BenchPlan, device: str):
    from coral_ft.metrics.features import load_inception

    e = plan.config.eval
    net = load_inception(e.weights_dir, device, e.feature_batch_size, e.resize)
    net.progress = True
    return net


# -- one trial ------------------------------------------------------------------------------------
def train_stage(trial: Trial, accelerator, progress: bool) -> Path:
    from coral_ft.train.trainer import train

    marker = trial.folder / "train.done.json"
    if _done(marker):
        return trial.run_dir / "model"
    # --resume starts a run that has no checkpoint yet, and continues one that has.
    model_dir = train(trial.config, trial.run_dir, resume=True, progress=progress)
    if accelerator.is_main_process:
        write_json(marker, {"model": str(model_dir), "steps": trial.config.train.max_steps})
    accelerator.wait_for_everyone()
    return model_dir


def _sample(trial: Trial, model_dir: Path, path: Path, num: int, settings, accelerator, progress: bool) -> None:
    from coral_ft.sample.run import sample_to_npz

    sample_to_npz(model_dir, path, num, settings, accelerator=accelerator, progress=progress)


def sweep_stage(plan: BenchPlan, trial: Trial, model_dir: Path, reference: Path, extractor, device: str,
                accelerator, progress: bool) -> float:
    """Paper Figure 8's protocol: sample a selection set (its own sampling seed) at each W of the
    sweep, pick the W with the lowest FID. The reported samples are drawn afterwards, with the
    reported seed, at that W: nothing is selected on the samples that are reported."""
    if not plan.sweep:
        return trial.config.sample.guidance
    folder = trial.folder / "selection"
    result_path = folder / "selection.json"
    if not _done(result_path):
        folder.mkdir(parents=True, exist_ok=True)
        base = replace(trial.config.sample, labels=plan.label_mode, seed=trial.config.sample.seed + SELECTION_SEED_OFFSET)
        fids = {}
        for w in plan.sweep:
            path = folder / f"w{w:g}.npz"
            if not path.is_file():
                _sample(trial, model_dir, path, plan.config.bench.selection_samples, replace(base, guidance=w),
                        accelerator, progress)
            if accelerator.is_main_process:
                fids[w] = _selection_fid(plan, path, reference, extractor, device)
        if accelerator.is_main_process:
            best = min(fids, key=lambda w: (fids[w], w))
            write_json(result_path, {"fid": {f"{w:g}": v for w, v in fids.items()}, "chosen": best,
                                     "samples": plan.config.bench.selection_samples, "seed": base.seed})
        accelerator.wait_for_everyone()
    return float(json.loads(result_path.read_text())["chosen"])


def _selection_fid(plan: BenchPlan, path: Path, reference: Path, extractor, device: str) -> float:
    from coral_ft.metrics.evaluate import evaluate

    return evaluate(path, reference, eval_settings(plan, ["fid"]), extractor=extractor, device=device)["metrics"]["fid"]["value"]


def sample_stage(plan: BenchPlan, trial: Trial, model_dir: Path, guidance: float, accelerator, progress: bool) -> Path:
    marker, path = trial.folder / "sample.done.json", trial.folder / "samples.npz"
    if _done(marker):
        return path
    settings = replace(trial.config.sample, guidance=guidance, labels=plan.label_mode)
    _sample(trial, model_dir, path, plan.num_samples, settings, accelerator, progress)
    if accelerator.is_main_process:
        write_json(marker, {"samples": plan.num_samples, "guidance": guidance, "sampler": settings.sampler,
                            "steps": settings.steps})
        save_trial_grid(trial, path, f"{trial.name}, W={guidance:g}")
    accelerator.wait_for_everyone()
    return path


def reference_counts(trial: Trial) -> list[int] | None:
    info = json.loads((trial.run_dir / "model" / "coral_ft.json").read_text())
    return info.get("extra", {}).get("class_counts")


def _class_names(trial: Trial, num_classes: int) -> list[str]:
    from coral_ft.checkpoint.model import load_info

    return load_info(trial.run_dir / "model").class_names or [str(c) for c in range(num_classes)]


def save_trial_grid(trial: Trial, samples_npz: Path, title: str) -> Path:
    from coral_ft.sample.grid import save_class_grid

    with np.load(samples_npz) as f:
        images, labels = f["images"], f["labels"]
    counts = reference_counts(trial)
    names = _class_names(trial, len(counts) if counts else int(labels.max()) + 1)
    return save_class_grid(images, labels, names, trial.folder / "grid.png", counts, title=title)


def has_per_class_samples(labels: np.ndarray, num_classes: int) -> bool:
    """Every class has enough samples for a per-class FID."""
    counts = np.bincount(labels, minlength=num_classes)
    return counts.size > 0 and int(counts.min()) >= max(PER_CLASS_MIN_SAMPLES, MIN_SAMPLES)


def evaluate_stage(plan: BenchPlan, trial: Trial, samples: Path, reference: Path, groups: Groups, extractor,
                   memo_feats: dict | None, device: str, guidance: float) -> dict:
    from coral_ft.metrics.evaluate import evaluate, load_samples
    from coral_ft.metrics.registry import computations_for

    path = trial.folder / "eval.json"
    if path.is_file():
        return json.loads(path.read_text())
    loaded = load_samples(samples)
    num_classes = sum(len(c) for c in groups.classes.values())
    wanted = computations_for(plan.metrics)
    if has_per_class_samples(loaded.labels, num_classes):
        wanted.append("per-class-fid")
    result = evaluate(samples, reference, eval_settings(plan, wanted), extractor=extractor, device=device,
                      groups=groups.classes)
    result["guidance"] = guidance
    result["groups_rule"] = groups.rule
    if extractor is not None and hasattr(extractor, "per_class_accuracy"):
        acc = extractor.per_class_accuracy(loaded.images, loaded.labels, num_classes)
        result["sample_accuracy"] = {"per_class": acc, "mean": float(np.nanmean(acc))}
        for name, classes in groups.classes.items():
            result["groups"][name]["sample_accuracy"] = float(np.nanmean([acc[c] for c in classes]))
    if memo_feats is not None:
        result["memorisation"] = _memorisation(loaded, memo_feats, groups, extractor, device, plan, trial)
    write_json(path, result)
    return result


def _memorisation(samples, feats: dict, groups: Groups, extractor, device: str, plan: BenchPlan, trial: Trial) -> dict:
    from coral_ft.bench.figures import memorisation_picture
    from coral_ft.metrics.memorisation import memorisation

    net = extractor or _inception(plan, device)
    sample_feats = net.features(samples.images)
    memo = memorisation(sample_feats, samples.labels, feats["train_features"], feats["train_labels"],
                        feats["heldout_features"], feats["heldout_labels"])
    out = {"rule": f"share of samples closer to a training image of their class than the held-out images' "
                   f"{5}th percentile", "groups": {n: memo.share(samples.labels, c) for n, c in groups.classes.items()},
           "overall": memo.share(samples.labels, np.unique(samples.labels))}
    tail = _picture_classes(feats["train_labels"], groups)
    if tail:
        counts = np.bincount(feats["train_labels"]).tolist()
        names = _class_names(trial, len(counts))
        memorisation_picture(trial.folder / "memorisation.png", samples, memo, plan, tail, trial.name, names, counts)
        out["picture"] = "memorisation.png"
    return out


def _picture_classes(train_labels: np.ndarray, groups: Groups, limit: int = 3) -> list[int]:
    """The tail classes shown beside their nearest training images: 5-50 training images (where
    memorisation shows first), else the rarest classes."""
    counts = np.bincount(train_labels)
    rare = sorted((c for c in range(len(counts)) if 5 <= counts[c] <= 50), key=lambda c: counts[c])
    return (rare or sorted(range(len(counts)), key=lambda c: counts[c]))[:limit]
