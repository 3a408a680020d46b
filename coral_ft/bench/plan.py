"""What a bench runs: its trials, one per (arm, seed), each with its own run config.

Two protocols:
- `scratch` (the paper's): every method trains from scratch; trial i of a method trains with
  `train.seed + i`, and every method shares the seed indices, so differences are paired.
- `finetune`: per base seed b, one base (a DDPM the bench trains, `bench.finetune.base_kind`, or the
  user's `bench.finetune.base`), reported as arm `base`; then every arm (`<method>` fine-tunes every
  weight, `<method>-lora` LoRA adapters) fine-tunes it with the same steps, schedule, batch and
  fine-tune seed. Seed index k = b * seeds + i uses base b and fine-tune seed i.

Folder layout under `--out`:

    reference.npz                       the reference's features and statistics, shared by every trial
    memorisation.npz                    metric-network features of the training and held-out images
    classifier.pt                       the small metric network (digits, Fashion-MNIST, or --scale smoke)
    <arm>/seed-<i>/run/                 the training run (trainer's own layout, resumable)
    <arm>/seed-<i>/train.done.json      stage markers: a stage with a marker is skipped (+ the arm's cost)
    <arm>/seed-<i>/selection/           guidance sweep: selection samples per W and selection.json
    <arm>/seed-<i>/samples.npz, sample.done.json
    <arm>/seed-<i>/eval.json            evaluate()'s result + groups, sample accuracy, memorisation
    <arm>/seed-<i>/grid.png             10 labelled samples per class (up to 10 classes)
    base/seed-<b>/conditional/          finetune: the base with a class embedding, when it had none
    results.md, results.csv, results.json, *.png   (rewritten every time: cheap)

Scales: `paper` runs the recipe as it is (50k samples, the recipe's sampler); `small` cuts
training to a tenth (at least 300 steps) and samples up to 10k with the fast sampler; `smoke` is
a CPU check of the plumbing: micro U-Net, 4 steps, a few samples, the small classifier as metric
network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral_ft.bench.schema import arm_method
from coral_ft.config import RunConfig, apply_overrides, config_from_dict
from coral_ft.errors import ConfigError, UserError
from coral_ft.metrics.registry import metric

SMALL_SAMPLES = 10_000
SMALL_SAMPLER = {"sample.sampler": "dpm++", "sample.steps": 20}  # fast sampler of the `small` scale
SMOKE_MAX_SAMPLES = 500  # smoke stays a minutes-long CPU check
SMOKE_OVERRIDES = {
    "model.preset": "micro", "train.max_steps": 4, "train.batch_size": 16, "train.warmup_steps": 2,
    "train.log_every": 2, "train.checkpoint_every": 2, "train.sample_every": 10**9, "train.sample_grid": 2,
    "sample.sampler": "ddim", "sample.steps": 3, "sample.batch_size": 16,  # several batches: every process samples
    # a CPU check: the GPU recipes' fast path (bf16, channels-last, compile) stays off
    "train.mixed_precision": "no", "train.channels_last": False, "train.compile": False, "train.compile_mode": "default",
    "sample.precision": "no", "sample.compile": False,
}
SELECTION_SEED_OFFSET = 1_000_003  # the selection set's sampling seed: never the reported samples' seed
FINETUNE_SEED_OFFSET = 10_000  # fine-tune seed i trains with train.seed + this + i: never a base's data order
BASE_ARM = "base"
BASELINE = "ddpm"  # the arm every other is compared with, pairwise by seed index


@dataclass
class Trial:
    arm: str  # the report's row: a method, a variant (coral-null), a fine-tune arm (coral-lora) or `base`
    seed_index: int
    config: RunConfig  # this trial's run: its objective, W, seed and the scale's overrides
    folder: Path
    paper: dict[str, float] = field(default_factory=dict)
    role: str = "scratch"  # scratch | base (finetune: the base every arm starts from) | arm (a fine-tune)
    trains: bool = True  # False: a user's base, used as it is

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def name(self) -> str:
        return f"{self.arm}/seed-{self.seed_index}"


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
    def arms(self) -> list[str]:
        return list(dict.fromkeys(t.arm for t in self.trials))

    @property
    def protocol(self) -> str:
        return self.config.bench.protocol

    @property
    def scale(self) -> str:
        return self.config.bench.scale

    @property
    def title(self) -> str:
        return self.config.bench.title or self.config.data.dataset

    @property
    def sweep(self) -> list[float]:
        return list(self.config.bench.guidance_sweep)


def run_config(config: RunConfig, method: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The run config of one bench method (or variant): this config, its objective, its W, its overrides."""
    spec = config.bench.method(method)
    given = {"objective.method": spec.method or method, **spec.overrides, **(overrides or {})}
    if spec.guidance is not None:
        given["sample.guidance"] = spec.guidance
    try:
        return config_from_dict(apply_overrides(config.to_dict(), given))
    except ConfigError as exc:
        raise ConfigError(f"bench.methods.{method}: {exc}") from None


def scale_overrides(config: RunConfig) -> tuple[dict, int | None]:
    """(config overrides, sample count or None for the recipe's) of the bench's scale; the fields
    in bench.keep (what the user set) are left out."""
    scale, count = config.bench.scale, None
    if scale == "paper":
        overrides = {}
    elif scale == "small":
        steps = max(min(300, config.train.max_steps), config.train.max_steps // 10)
        every = max(100, steps // 5)
        # EMA warm-up: a constant 0.9999 over a tenth of the schedule leaves the EMA weights mostly
        # at their random initialisation (0.9999^15000 = 0.22; seen on a GPU as noise samples).
        overrides = {"train.max_steps": steps, "train.checkpoint_every": every, "train.sample_every": every,
                     "train.ema_warmup": True, **SMALL_SAMPLER}
        count = SMALL_SAMPLES
    else:  # smoke: the count depends on the class count
        overrides = SMOKE_OVERRIDES
    return {k: v for k, v in overrides.items() if k not in config.bench.keep}, count


def make_plan(name: str, config: RunConfig, out) -> BenchPlan:
    from coral_ft.data.registry import DATASETS

    b = config.bench
    if b.protocol == "scratch" and not b.run:
        raise UserError("bench.run is empty: name the methods to run with --methods")
    overrides, count = scale_overrides(config)
    use_classifier = b.metric_network == "classifier" or (
        b.metric_network == "auto" and (b.scale == "smoke" or DATASETS[config.data.dataset].classifier_metrics))
    metrics = [m for m in b.metrics if not use_classifier or metric(m).with_classifier]
    make = finetune_trials if b.protocol == "finetune" else scratch_trials
    trials = make(config, overrides, Path(out))
    num = min(count, b.num_samples) if count else b.num_samples
    return BenchPlan(name, config, trials, Path(out), metrics, num, use_classifier,
                     "balanced" if b.scale == "smoke" else "uniform")


def scratch_trials(config: RunConfig, overrides: dict, out: Path) -> list[Trial]:
    b = config.bench
    return [Trial(method, i, run_config(config, method, {**overrides, "train.seed": config.train.seed + i}),
                  out / method / f"seed-{i}", dict(b.method(method).paper))
            for method in b.run for i in range(b.seeds)]


def finetune_trials(config: RunConfig, overrides: dict, out: Path) -> list[Trial]:
    """The bases first (each arm needs its base), then every arm over every (base, fine-tune seed)."""
    b, ft = config.bench, config.bench.finetune
    trials = [Trial(BASE_ARM, base, base_config(config, overrides, base), out / BASE_ARM / f"seed-{base}", role="base",
                    trains=not ft.base) for base in range(ft.base_seeds)]
    # the arms' budget is the fine-tune table's, shortened by the scale as the base's own budget is;
    # a method's own training settings (T2H's longer schedule) give way to it, so every arm trains alike
    budget = config_from_dict(apply_overrides(config.to_dict(), ft.overrides))
    method_train_keys = {key for arm in ft.arms for key in b.method(arm_method(arm)[0]).overrides if key.startswith("train.")}
    train = budget.to_dict()["train"]
    arm_overrides = {**{key: train[key.split(".", 1)[1]] for key in method_train_keys}, **ft.overrides,
                     **scale_overrides(budget)[0]}
    for arm in ft.arms:
        method, lora = arm_method(arm)
        for base in range(ft.base_seeds):
            spec = ft.base or str(out / BASE_ARM / f"seed-{base}" / "run")
            for i in range(b.seeds):
                k = base * b.seeds + i
                given = {**overrides, **arm_overrides, "finetune.base": spec, "finetune.lora": lora,
                         "train.seed": config.train.seed + FINETUNE_SEED_OFFSET + i}
                trials.append(Trial(arm, k, run_config(config, method, given), out / arm / f"seed-{k}", role="arm"))
    return trials


def base_config(config: RunConfig, overrides: dict, base: int) -> RunConfig:
    """The base's training run: DDPM on the long-tailed set, or unconditional on the balanced set."""
    ft = config.bench.finetune
    given = {**overrides, **ft.base_overrides, "train.seed": config.train.seed + base}
    if ft.base_kind == "uncond-balanced":
        given.update({"data.imbalance": 1.0, "model.conditional": False})
    return run_config(config, "ddpm", given)


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
    from coral_ft.sample.registry import SAMPLERS

    c, h, w = image_shape
    b = plan.config.bench
    sweep = f"; W chosen per trial by FID on {b.selection_samples} selection samples from {plan.sweep}" if plan.sweep else ""
    protocol = "" if plan.protocol == "scratch" else f", fine-tune protocol ({b.finetune.base_seeds} base(s))"
    lines = [f"bench {plan.name} ({plan.title}), scale {plan.scale}{protocol}, {b.seeds} seed(s) per arm, out {plan.out}",
             f"metrics: {', '.join(plan.metrics)}" + (" (small classifier features)" if plan.use_classifier else "") + sweep]
    for trial in plan.trials:
        if trial.seed_index:
            continue
        cfg = trial.config
        with torch.device("meta"):
            classes = num_classes if cfg.model.conditional else None
            params = sum(p.numel() for p in build_unet(cfg.model.preset, h, c, classes).parameters())
        ckpt_mb = params * 4 * 4 / 2**20  # weights + EMA + two Adam moments, fp32
        npz_mb = plan.num_samples * h * w * c / 2**20
        s = cfg.sample
        steps = s.steps or SAMPLERS[s.sampler].default_steps or cfg.model.num_train_timesteps
        what = {"scratch": "train", "base": "train base" if trial.trains else "base (given)",
                "arm": "fine-tune LoRA" if cfg.finetune.lora else "fine-tune"}[trial.role]
        lines.append(
            f"  {trial.arm:10s} x{b.seeds * b.finetune.base_seeds if trial.role != 'base' else b.finetune.base_seeds}: {what} "
            f"{cfg.train.max_steps if trial.trains else 0} steps x batch {cfg.train.batch_size} "
            f"({cfg.model.preset}, {params / 1e6:.1f}M params, ~{ckpt_mb:.0f} MB per checkpoint x {cfg.train.keep_checkpoints}); "
            f"sample {plan.num_samples} at W={s.guidance if not plan.sweep else 'swept'} ({steps}-step {s.sampler}, "
            f"~{npz_mb:.2f} MB); evaluate")
    return "\n".join(lines)
