"""`coral-ft bench`: per method train -> sample -> evaluate, then a report beside the paper.

Folder layout under `--out`:

    classifier.pt                       (digits-lt, or any data set at --scale smoke)
    reference.npz                       the reference's features and statistics, shared by every method
    <method>/run/                       the training run (trainer's own layout, resumable)
    <method>/train.done.json            stage markers: a stage with a marker is skipped
    <method>/samples.npz, sample.done.json
    <method>/eval.json                  evaluate()'s result + per-class sample accuracy
    <method>/grid.png                   10 samples per class (up to 10 classes)
    results.md, results.csv, results.json, per_class_fid.png   (rewritten every time: cheap)

Scales: `paper` runs the recipe as it is (50k samples, 1000-step DDPM sampling); `small` cuts
training to a tenth (at least 300 steps) and samples up to 10k with (at most) 100-step DDIM; `smoke` is a CPU
check of the plumbing: micro U-Net, 4 steps, a few samples, the small classifier as metric network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coral_ft.bench.spec import BENCH_METRICS, BenchSpec, MethodSpec, bench_spec, method_config
from coral_ft.errors import UserError

SCALES = ("paper", "small", "smoke")
DEFAULT_METHODS = ("ddpm", "cbdm", "t2h", "coral")
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
SMOKE_OVERRIDES = {
    "model.preset": "micro", "train.max_steps": 4, "train.batch_size": 16, "train.warmup_steps": 2,
    "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 10**9, "train.sample_grid": 2,
    "sample.sampler": "ddim", "sample.steps": 3, "sample.batch_size": 64,
}
CLASSIFIER_METRICS = ("fid", "is", "recall", "precision", "kid", "f8", "f1_8")  # meaningful with the classifier
GRID_CLASSES, GRID_PER_CLASS = 10, 10
FALLBACK_SAMPLES = 1000  # recipes without a [bench] table (digits-lt): a small data set, CPU sampling
SMALL_SAMPLES = 10_000
SMOKE_MAX_SAMPLES = 500  # smoke stays a minutes-long CPU check
PER_CLASS_MIN_SAMPLES = 10  # fewer samples of a class make its FID meaningless: skip per-class FID
# Each class's Inception covariance is 2048 x 2048 float64 (32 MB): CIFAR-100 would hold 3.3 GB,
# ImageNet-LT 32 GB. Per-class FID (the paper's Figure 3 is CIFAR10-LT) stops at this many classes
# unless the features are the small classifier's 64-d ones.
PER_CLASS_FID_MAX_CLASSES = 20


@dataclass
class MethodPlan:
    method: MethodSpec
    config: Any  # RunConfig of this method's run
    num_samples: int
    folder: Path


@dataclass
class BenchPlan:
    name: str
    scale: str
    spec: BenchSpec
    metrics: list[str]
    runs: list[MethodPlan]
    out: Path
    data_root: str | None
    use_classifier: bool
    label_mode: str  # "uniform" (the paper) or "balanced" (smoke: every class present)
    skipped: list[str] = field(default_factory=list)  # table columns too costly at this scale


def find_recipe(name: str, recipe: str | None) -> Path:
    path = Path(recipe) if recipe else RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        raise UserError(f"no recipe {path}; choose a bench from {known} or pass --recipe FILE")
    return path


def scale_overrides(config, scale: str) -> tuple[dict, int | None]:
    """(config overrides, sample count or None for the recipe's) of a scale."""
    if scale == "paper":
        return {}, None
    if scale == "small":
        steps = max(min(300, config.train.max_steps), config.train.max_steps // 10)
        ddim_steps = min(100, config.sample.steps) if config.sample.sampler == "ddim" else 100
        every = max(100, steps // 5)
        return {"train.max_steps": steps, "train.checkpoint_every": every, "train.sample_every": every,
                "sample.sampler": "ddim", "sample.steps": ddim_steps}, SMALL_SAMPLES
    return dict(SMOKE_OVERRIDES), None  # smoke: the count depends on the class count


def make_plan(name: str, methods: list[str], scale: str, out, data_root=None, recipe=None) -> BenchPlan:
    from coral_ft.config import load_config

    if scale not in SCALES:
        raise UserError(f"--scale must be one of {', '.join(SCALES)}; got {scale!r}")
    base = load_config(find_recipe(name, recipe), {"data.root": data_root} if data_root else {})
    if "bench" not in base.extra:  # e.g. digits-lt: no paper numbers, every method at the recipe's W
        base.extra["bench"] = {"metrics": ["fid", "is", "precision", "recall"], "num_samples": FALLBACK_SAMPLES,
                               "methods": {m: {"guidance": base.sample.guidance} for m in methods}}
    spec = bench_spec(base)
    missing = [m for m in methods if m not in spec.methods]
    if missing:
        raise UserError(f"--methods: {', '.join(missing)} not in the recipe's [bench.methods]; it has {', '.join(spec.methods)}")
    overrides, num = scale_overrides(base, scale)
    use_classifier = scale == "smoke" or base.data.dataset == "digits-lt"
    metrics = [m for m in spec.metrics if not use_classifier or m in CLASSIFIER_METRICS]
    runs = []
    for m in methods:
        cfg = method_config(base, spec.methods[m], overrides)
        count = min(num, spec.num_samples) if num else spec.num_samples
        runs.append(MethodPlan(spec.methods[m], cfg, count, Path(out) / m))
    plan = BenchPlan(name, scale, spec, metrics, runs, Path(out), data_root, use_classifier,
                     "balanced" if scale == "smoke" else "uniform")
    return plan


def fit_smoke_samples(plan: BenchPlan, num_classes: int) -> None:
    """Smoke sample counts: 4 per class (at least 20), raised to what PRD needs (20 clusters per
    class) when that stays small; on many classes PRD's columns are skipped instead."""
    from coral_ft.metrics.prd import CLUSTERS_PER_CLASS

    count = max(20, 4 * num_classes)
    prd_columns = [m for m in plan.metrics if BENCH_METRICS[m][0] == "prd"]
    if prd_columns:
        prd_needs = CLUSTERS_PER_CLASS * num_classes
        if prd_needs <= SMOKE_MAX_SAMPLES:
            count = max(count, prd_needs)
        else:
            plan.metrics = [m for m in plan.metrics if m not in prd_columns]
            plan.skipped += prd_columns
    for run in plan.runs:
        run.num_samples = count


def check_data(plan: BenchPlan):
    """Load the training split now: a missing data set stops before any work (with how to get it)."""
    from coral_ft.data.registry import dataset_from_config

    return dataset_from_config(plan.runs[0].config.data)


def describe(plan: BenchPlan, num_classes: int, image_shape: tuple[int, int, int]) -> str:
    """The --dry-run text: what runs, and how big its outputs get."""
    import torch

    from coral_ft.models.presets import build_unet

    c, h, w = image_shape
    lines = [f"bench {plan.name} ({plan.spec.title}), scale {plan.scale}, out {plan.out}",
             f"metrics: {', '.join(plan.metrics)}" + (" (small classifier features)" if plan.use_classifier else "")]
    for run in plan.runs:
        cfg = run.config
        with torch.device("meta"):
            params = sum(p.numel() for p in build_unet(cfg.model.preset, h, c, num_classes).parameters())
        ckpt_mb = params * 4 * 4 / 2**20  # weights + EMA + two Adam moments, fp32
        npz_mb = run.num_samples * h * w * c / 2**20
        sampler = "1000-step DDPM" if cfg.sample.sampler == "ddpm" else f"{cfg.sample.steps}-step DDIM"
        lines.append(
            f"  {run.method.name:8s} train {cfg.train.max_steps} steps x batch {cfg.train.batch_size} "
            f"({cfg.model.preset}, {params / 1e6:.1f}M params, ~{ckpt_mb:.0f} MB per checkpoint x {cfg.train.keep_checkpoints}); "
            f"sample {run.num_samples} at W={cfg.sample.guidance} ({sampler}, ~{npz_mb:.2f} MB); evaluate")
    return "\n".join(lines)


def _done(marker: Path) -> bool:
    return marker.is_file()


def _mark(marker: Path, info: dict) -> None:
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(marker)


def train_stage(run: MethodPlan, accelerator, progress: bool) -> Path:
    from coral_ft.train.trainer import train

    marker, run_dir = run.folder / "train.done.json", run.folder / "run"
    if _done(marker):
        return run_dir / "model"
    has_ckpt = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    if not has_ckpt and run_dir.exists() and accelerator.is_main_process:
        shutil.rmtree(run_dir)  # a start that died before its first checkpoint: begin again
    accelerator.wait_for_everyone()
    model_dir = train(run.config, run_dir, resume=has_ckpt, progress=progress)
    if accelerator.is_main_process:
        _mark(marker, {"model": str(model_dir), "steps": run.config.train.max_steps})
    accelerator.wait_for_everyone()
    return model_dir


def sample_stage(run: MethodPlan, model_dir: Path, label_mode: str, accelerator, progress: bool) -> Path:
    from coral_ft.sample.run import sample_to_npz

    marker, path = run.folder / "sample.done.json", run.folder / "samples.npz"
    if _done(marker):
        return path
    s = run.config.sample
    sample_to_npz(model_dir, path, run.num_samples, s.guidance, s.sampler, s.steps, label_mode, s.batch_size,
                  run.config.train.seed, None, accelerator, eta=s.eta, progress=progress)
    if accelerator.is_main_process:
        _mark(marker, {"samples": run.num_samples, "guidance": s.guidance, "sampler": s.sampler})
        save_grid(path, run.folder / "grid.png")
    accelerator.wait_for_everyone()
    return path


def save_grid(samples_npz: Path, out: Path) -> Path:
    """Up to 10 samples of each of up to 10 classes, one row per class."""
    import torch
    from torchvision.utils import save_image

    with np.load(samples_npz) as f:
        images, labels = f["images"], f["labels"]
    classes = np.unique(labels)[:GRID_CLASSES]
    rows = [images[labels == c][:GRID_PER_CLASS] for c in classes]
    per_row = min(len(r) for r in rows)
    grid = torch.from_numpy(np.concatenate([r[:per_row] for r in rows])).permute(0, 3, 1, 2).float() / 255
    save_image(grid, out, nrow=per_row)
    return out


def reference_images(plan: BenchPlan):
    """The real images every metric compares against: the data set's balanced reference split."""
    from coral_ft.data.registry import DATASETS
    from coral_ft.metrics.reference import load_reference_images

    data_cfg = plan.runs[0].config.data
    split = DATASETS[data_cfg.dataset].reference_split
    return load_reference_images(f"{data_cfg.dataset}:{split}", data_cfg.root, data_cfg.image_size)


def metric_network(plan: BenchPlan, real):
    """The small classifier (digits-lt, smoke) or None for evaluate()'s TF-Inception / VGG16."""
    if not plan.use_classifier:
        return None
    from coral_ft.bench.classifier import load_or_train

    return load_or_train(plan.out / "classifier.pt", real.images, real.labels, len(real.class_names))


def has_per_class_samples(labels: np.ndarray) -> bool:
    """Every class from 0 to the largest label has enough samples for a per-class FID."""
    counts = np.bincount(labels)
    return counts.size > 0 and int(counts.min()) >= PER_CLASS_MIN_SAMPLES


def per_class_fid_fits(plan: BenchPlan, num_classes: int) -> bool:
    return plan.use_classifier or num_classes <= PER_CLASS_FID_MAX_CLASSES


def reference_stage(plan: BenchPlan, real, extractor, device: str) -> Path:
    """The reference's features and statistics, computed once for every method (50k real images
    through Inception and VGG16, or the classifier, cost as much as a method's evaluation)."""
    from coral_ft.metrics.evaluate import make_reference

    path = plan.out / "reference.npz"
    if path.is_file():
        return path
    wanted = sorted({BENCH_METRICS[m][0] for m in plan.metrics})
    wanted += ["per-class-fid"] if per_class_fid_fits(plan, len(real.class_names)) else []
    return make_reference(real, path, wanted, extractor=extractor, device=device)


def evaluate_stage(plan: BenchPlan, run: MethodPlan, samples: Path, reference: Path, num_classes: int, extractor,
                   device: str) -> dict:
    from coral_ft.metrics.evaluate import evaluate

    path = run.folder / "eval.json"
    if path.is_file():
        return json.loads(path.read_text())
    wanted = sorted({BENCH_METRICS[m][0] for m in plan.metrics})
    with np.load(samples) as f:
        labels = f["labels"]
    per_class_ok = per_class_fid_fits(plan, num_classes) and has_per_class_samples(labels)
    result = evaluate(samples, reference, wanted + (["per-class-fid"] if per_class_ok else []), extractor=extractor,
                      device=device)
    if extractor is not None:
        with np.load(samples) as f:
            acc = extractor.per_class_accuracy(f["images"], f["labels"], int(f["labels"].max()) + 1)
        result["sample_accuracy"] = {"per_class": acc, "mean": float(np.nanmean(acc))}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(path)
    return result


def run_bench(plan: BenchPlan, progress: bool = True, device: str | None = None) -> Path:
    """Every stage of every method, skipping finished ones; then the report. -> results.md."""
    import torch
    from accelerate import Accelerator

    from coral_ft.bench.report import write_report

    accelerator = Accelerator()
    device = device or str(accelerator.device)
    plan.out.mkdir(parents=True, exist_ok=True)
    extractor, reference, num_classes = None, None, 0
    if accelerator.is_main_process:  # the metrics run on the main process only
        real = reference_images(plan)
        extractor = metric_network(plan, real)
        reference = reference_stage(plan, real, extractor, device)
        num_classes = len(real.class_names)
        del real
    evaluations = {}
    for run in plan.runs:
        run.folder.mkdir(parents=True, exist_ok=True)
        model_dir = train_stage(run, accelerator, progress)
        samples = sample_stage(run, model_dir, plan.label_mode, accelerator, progress)
        if accelerator.is_main_process:
            evaluations[run.method.name] = evaluate_stage(plan, run, samples, reference, num_classes, extractor, device)
        accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return plan.out / "results.md"
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return write_report(plan, evaluations)
