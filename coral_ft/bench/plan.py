"""What a bench runs: one trial per (method, training seed), each with its own run config.

Folder layout under `--out`:

    reference.npz                       the reference's features and statistics, shared by every trial
    memorisation.npz                    metric-network features of the training and held-out images
    classifier.pt                       the small metric network (digits, Fashion-MNIST, or --scale smoke)
    <method>/seed-<i>/run/              the training run (trainer's own layout, resumable)
    <method>/seed-<i>/train.done.json   stage markers: a stage with a marker is skipped
    <method>/seed-<i>/selection/        guidance sweep: selection samples per W and selection.json
    <method>/seed-<i>/samples.npz, sample.done.json
    <method>/seed-<i>/eval.json         evaluate()'s result + groups, sample accuracy, memorisation
    <method>/seed-<i>/grid.png          10 labelled samples per class (up to 10 classes)
    results.md, results.csv, results.json, *.png   (rewritten every time: cheap)

Scales: `paper` runs the recipe as it is (50k samples, the recipe's sampler); `small` cuts
training to a tenth (at least 300 steps) and samples up to 10k with the fast sampler; `smoke` is
a CPU check of the plumbing: micro U-Net, 4 steps, a few samples, the small classifier as metric
network. Trial i of a method trains with `train.seed + i`; every method shares seed indices, so
differences are paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coral_ft.config import RunConfig
from coral_ft.errors import UserError
from coral_ft.metrics.registry import metric

SMALL_SAMPLES = 10_000
SMALL_SAMPLER = {"sample.sampler": "dpm++", "sample.steps": 20}  # fast sampler of the `small` scale
SMOKE_MAX_SAMPLES = 500  # smoke stays a minutes-long CPU check
SMOKE_OVERRIDES = {
    "model.preset": "micro", "train.max_steps": 4, "train.batch_size": 16, "train.warmup_steps": 2,
    "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 10**9, "train.sample_grid": 2,
    "sample.sampler": "ddim", "sample.steps": 3, "sample.batch_size": 64,
    # a CPU check: the GPU recipes' fast path (bf16, channels-last, compile) stays off
    "train.mixed_precision": "no", "train.channels_last": False, "train.compile": False, "train.compile_mode": "default",
    "sample.precision": "no", "sample.compile": False,
}
CLASSIFIER_METRICS = ("fid", "is", "recall", "precision", "kid", "f8", "f1_8")  # meaningful with the classifier
SELECTION_SEED_OFFSET = 1_000_003  # the selection set's sampling seed: never the reported samples' seed


@dataclass
class Trial:
    method: str
    seed_index: int
    config: RunConfig  # this trial's run: its objective, W, seed and the scale's overrides
    folder: Path
    paper: dict[str, float] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def name(self) -> str:
        return f"{self.method}/seed-{self.seed_index}"


@dataclass
class BenchPlan:
    name: str
    config: RunConfig  # the resolved recipe, bench section included
    trials: list[Trial]
    out: Path
    metrics: list[str]
    num_samples: int
    use_classifier: bool
    label_mode: str  # "uniform" (the paper) or "balanced" (smoke: every class present)
    skipped: list[str] = field(default_factory=list)  # table columns too costly at this scale

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(t.method for t in self.trials))

    @property
    def scale(self) -> str:
        return self.config.bench.scale

    @property
    def title(self) -> str:
        return self.config.bench.title or self.config.data.dataset

    @property
    def sweep(self) -> list[float]:
        return list(self.config.bench.guidance_sweep)


def scale_overrides(config: RunConfig) -> tuple[dict, int | None]:
    """(config overrides, sample count or None for the recipe's) of the bench's scale."""
    scale = config.bench.scale
    if scale == "paper":
        return {}, None
    if scale == "small":
        steps = max(min(300, config.train.max_steps), config.train.max_steps // 10)
        every = max(100, steps // 5)
        # EMA warm-up: a constant 0.9999 over a tenth of the schedule leaves the EMA weights mostly
        # at their random initialisation (0.9999^15000 = 0.22; seen on a GPU as noise samples).
        return {"train.max_steps": steps, "train.checkpoint_every": every, "train.sample_every": every,
                "train.ema_warmup": True, **SMALL_SAMPLER}, SMALL_SAMPLES
    return dict(SMOKE_OVERRIDES), None  # smoke: the count depends on the class count


def make_plan(name: str, config: RunConfig, out) -> BenchPlan:
    from coral_ft.data.registry import DATASETS

    b = config.bench
    if not b.run:
        raise UserError("bench.run is empty: name the methods to run with --methods")
    overrides, count = scale_overrides(config)
    use_classifier = b.metric_network == "classifier" or (
        b.metric_network == "auto" and (b.scale == "smoke" or DATASETS[config.data.dataset].classifier_metrics))
    metrics = [m for m in b.metrics if not use_classifier or m in CLASSIFIER_METRICS]
    trials = []
    for method in b.run:
        spec = b.method(method)
        for i in range(b.seeds):
            cfg = config.bench_run_config(method, {**overrides, "train.seed": config.train.seed + i})
            trials.append(Trial(method, i, cfg, Path(out) / method / f"seed-{i}", dict(spec.paper)))
    num = min(count, b.num_samples) if count else b.num_samples
    return BenchPlan(name, config, trials, Path(out), metrics, num, use_classifier,
                     "balanced" if b.scale == "smoke" else "uniform")


def fit_smoke_samples(plan: BenchPlan, num_classes: int) -> None:
    """Smoke sample counts: 4 per class (at least 20), raised to what PRD needs (20 clusters per
    class) when that stays small; on many classes PRD's columns are skipped instead."""
    from coral_ft.metrics.prd import CLUSTERS_PER_CLASS

    count = max(20, 4 * num_classes)
    prd_columns = [m for m in plan.metrics if metric(m).computation == "prd"]
    if prd_columns:
        prd_needs = CLUSTERS_PER_CLASS * num_classes
        if prd_needs <= SMOKE_MAX_SAMPLES:
            count = max(count, prd_needs)
        else:
            plan.metrics = [m for m in plan.metrics if m not in prd_columns]
            plan.skipped += prd_columns
    plan.num_samples = count


def describe(plan: BenchPlan, num_classes: int, image_shape: tuple[int, int, int]) -> str:
    """The --dry-run text: what runs, and how big its outputs get."""
    import torch

    from coral_ft.models.presets import build_unet
    from coral_ft.sample.samplers import SAMPLERS

    c, h, w = image_shape
    b = plan.config.bench
    sweep = f"; W chosen per trial by FID on {b.selection_samples} selection samples from {plan.sweep}" if plan.sweep else ""
    lines = [f"bench {plan.name} ({plan.title}), scale {plan.scale}, {b.seeds} seed(s) per method, out {plan.out}",
             f"metrics: {', '.join(plan.metrics)}" + (" (small classifier features)" if plan.use_classifier else "") + sweep]
    for trial in plan.trials:
        if trial.seed_index:
            continue
        cfg = trial.config
        with torch.device("meta"):
            params = sum(p.numel() for p in build_unet(cfg.model.preset, h, c, num_classes).parameters())
        ckpt_mb = params * 4 * 4 / 2**20  # weights + EMA + two Adam moments, fp32
        npz_mb = plan.num_samples * h * w * c / 2**20
        s = cfg.sample
        steps = s.steps or SAMPLERS[s.sampler].default_steps or cfg.model.num_train_timesteps
        lines.append(
            f"  {trial.method:8s} x{b.seeds}: train {cfg.train.max_steps} steps x batch {cfg.train.batch_size} "
            f"({cfg.model.preset}, {params / 1e6:.1f}M params, ~{ckpt_mb:.0f} MB per checkpoint x {cfg.train.keep_checkpoints}); "
            f"sample {plan.num_samples} at W={s.guidance if not plan.sweep else 'swept'} ({steps}-step {s.sampler}, "
            f"~{npz_mb:.2f} MB); evaluate")
    return "\n".join(lines)
