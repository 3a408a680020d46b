"""The bench's settings: the [bench] section of the one typed configuration, defined here, by the
bench, and registered with the configuration (which sits below the bench and cannot import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral_ft.config import METRIC_NETWORKS, described, register_section
from coral_ft.errors import check, check_choice, check_positive

BENCH_SCALES = ("paper", "small", "smoke")


@dataclass
class BenchMethod:
    """One method of a bench: its objective, guidance W, config overrides for its run, the paper's numbers.

    An entry whose name is not an objective is a variant of one (`method`), e.g. `coral-null`."""

    method: str | None = None  # the objective; None: the entry's own name
    guidance: float | None = None  # None: the recipe's sample.guidance
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config overrides of its run
    paper: dict[str, float] = field(default_factory=dict)  # metric -> the paper's value
    # where the paper's numbers come from and how its protocol differs from the recipe's (sample
    # count, sampler, FID resize), or why there are none; results.md prints it beside the table
    paper_note: str = ""

    def __post_init__(self) -> None:
        check(self.guidance is None or self.guidance >= 0, f"bench method guidance must be >= 0; got {self.guidance}")


# Variants every bench knows besides the objectives (a recipe's [bench.methods.NAME] may redefine them).
BENCH_VARIANTS = {
    # CORAL whose head reads the bottleneck of a null-label pass: SupCon cannot be met through the labels.
    "coral-null": BenchMethod(method="coral", overrides={"objective.coral.features": "null"}),
}
PROTOCOLS = ("scratch", "finetune")
LORA_SUFFIX = "-lora"  # a fine-tune arm "<method>-lora" trains LoRA adapters, "<method>" every weight
BASE_KINDS = ("lt", "uncond-balanced")


@dataclass
class BenchFinetune:
    """`bench --protocol finetune`: one base per base seed, then every arm fine-tunes it alike."""

    arms: list[str] = described(["ddpm", "coral", "ddpm-lora", "coral-lora"], "Fine-tune arms, comma-separated: a method (every weight) or METHOD-lora (LoRA adapters); `base` is always reported.")
    base: str = described("", "Fine-tune this base (any `finetune --base` form) instead of training one (empty: the bench trains its base_kind).")
    base_kind: str = described("lt", "The base the bench trains: lt (a class-conditional DDPM on the long-tailed set) or uncond-balanced (an unconditional DDPM on the balanced set; fine-tuning adds a zero-initialised class embedding).")
    base_seeds: int = 1  # bases; each is fine-tuned with `bench.seeds` fine-tune seeds per arm
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted overrides of every arm's run (steps, lr, ...)
    base_overrides: dict[str, Any] = field(default_factory=dict)  # dotted overrides of the base's training run

    def __post_init__(self) -> None:
        check(bool(self.arms), "bench.finetune.arms is empty: name the arms, e.g. ddpm,coral,ddpm-lora,coral-lora")
        check(len(set(self.arms)) == len(self.arms), f"bench.finetune.arms lists an arm twice: {self.arms}")
        check(all(arm != "base" for arm in self.arms), "bench.finetune.arms: `base` is always reported; do not list it")
        check_choice("bench.finetune.base_kind", self.base_kind, BASE_KINDS)
        check_positive("bench.finetune", self, "base_seeds")
        # one given base fine-tuned base_seeds times would repeat identical runs and narrow the intervals
        check(not self.base or self.base_seeds == 1, f"bench.finetune.base_seeds = {self.base_seeds} with a given base "
              f"({self.base}): one base is one base seed; set base_seeds = 1, or let the bench train its bases")


LAUNCHERS = ("local", "slurm")


@dataclass
class BenchLaunch:
    """How the bench runs its trials: one after another in this process (local, jobs = 1), side by
    side on this machine (local, jobs > 1: each trial a process pinned to its GPUs or its share of
    the cores), or one SLURM job per trial through submitit (slurm)."""

    launcher: str = described("local", "local (this machine) or slurm (one SLURM job per trial through submitit; requeued on pre-emption; see docs/cluster.md).")
    jobs: int = described(1, "Trials at once on this machine, each its own process with --gpus-per-trial GPUs (or, on a CPU, its share of the cores); a fine-tune arm waits for its base.")
    gpus_per_trial: int = described(1, "GPUs each trial gets (CUDA_VISIBLE_DEVICES locally, --gpus-per-node on SLURM).")
    cpus_per_trial: int = described(0, "CPU cores (threads) each trial gets; 0: locally the cores shared between the jobs, on SLURM 8.")
    partition: str = described("", "SLURM partition (--launcher slurm; empty: the cluster's default).")
    time_min: int = described(24 * 60, "SLURM time limit of each trial, minutes (a pre-empted or timed-out trial is requeued and resumes).")
    mem_gb: int = 0  # slurm: memory per trial (0: the cluster's default)
    slurm: dict[str, Any] = field(default_factory=dict)  # further sbatch parameters (account, qos, constraint, ...)
    wait: bool = described(True, "SLURM: wait for the jobs and write the report; --no-wait submits every wave (each after the one before, by SLURM dependency) and returns: `bench --report` writes the report once they have run.")

    def __post_init__(self) -> None:
        check_choice("bench.launch.launcher", self.launcher, LAUNCHERS)
        check(self.wait or self.launcher == "slurm",
              "bench.launch.wait = false (--no-wait) needs --launcher slurm: local jobs end with this process")
        check_positive("bench.launch", self, "jobs", "time_min")
        check(self.gpus_per_trial >= 0 and self.cpus_per_trial >= 0 and self.mem_gb >= 0,
              "bench.launch.gpus_per_trial, cpus_per_trial and mem_gb must be >= 0")


def arm_method(arm: str) -> tuple[str, bool]:
    """A fine-tune arm's method (or variant) and whether it trains LoRA adapters."""
    return (arm[: -len(LORA_SUFFIX)], True) if arm.endswith(LORA_SUFFIX) else (arm, False)


@dataclass
class BenchConfig:
    """`coral-ft bench`: which methods to compare, how often, how they sample, the paper's numbers."""

    title: str = ""  # empty: the data set's name
    metrics: list[str] = field(default_factory=lambda: ["fid", "is", "precision", "recall"])
    num_samples: int = described(50_000, "Reported samples per method and seed (the paper: 50k).")
    methods: dict[str, BenchMethod] = field(default_factory=dict)  # per-method settings; absent: defaults
    run: list[str] = described(["ddpm", "cbdm", "t2h", "coral"], "Methods to run, comma-separated: an objective or a variant (coral-null, a key of the recipe's bench.methods table), each at the recipe's W.")
    scale: str = described("paper", "paper (the paper's runs), small (a tenth, one GPU) or smoke (CPU plumbing check).")
    # Fields a scale's overrides leave as they are: `coral-ft bench` lists the ones the user set
    # (--set, flags), so `--scale smoke --sample-batch-size 8` samples in batches of 8.
    keep: list[str] = field(default_factory=list)
    seeds: int = described(1, "Training seeds per method, seed i training with train.seed + i (results give means, 95% intervals and paired differences).")
    guidance_sweep: list[float] = described([], "W values, comma-separated: each method and seed picks its W by FID on a separate selection set (none: no sweep).")
    selection_samples: int = described(1_000, "Samples per W on the selection set (its own sampling seed).")
    # auto: TF-Inception for the paper's data sets, the bench's small classifier for digits,
    # Fashion-MNIST and the smoke scale; "classifier" also serves where Inception's weights are absent.
    metric_network: str = "auto"
    reference_split: str = ""  # the real images metrics compare against; empty: the data set's default
    protocol: str = described("scratch", "scratch: train every method from scratch; finetune: fine-tune one base per arm.")
    finetune: BenchFinetune = field(default_factory=BenchFinetune)
    launch: BenchLaunch = field(default_factory=BenchLaunch)

    def __post_init__(self) -> None:
        from coral_ft.metrics.registry import METRICS
        from coral_ft.objectives import OBJECTIVES

        for m in self.metrics:
            check_choice("bench.metrics", m, [name for name, spec in METRICS.items() if spec.computation])
        for name, spec in self.methods.items():
            if spec.method is not None or name not in OBJECTIVES:
                check_choice(f"bench.methods.{name}.method", spec.method or "(none given)", sorted(OBJECTIVES))
        known = sorted({*OBJECTIVES, *BENCH_VARIANTS, *self.methods})
        for name in self.run:
            check_choice("bench methods", name, known)
        check_choice("bench.protocol", self.protocol, PROTOCOLS)
        for arm in self.finetune.arms:
            check_choice("bench.finetune.arms (a method, optionally with -lora)", arm_method(arm)[0], known)
        for name, spec in self.methods.items():
            extra = set(spec.paper) - set(self.metrics)
            check(not extra, f"bench.methods.{name}.paper has values for {', '.join(sorted(extra))}, not in bench.metrics")
        check(len(set(self.run)) == len(self.run), f"bench.run lists a method twice: {self.run}")
        check_choice("bench.scale", self.scale, BENCH_SCALES)
        check_choice("bench.metric_network", self.metric_network, METRIC_NETWORKS)
        if self.reference_split:
            from coral_ft.data.registry import SPLITS

            check_choice("bench.reference_split", self.reference_split, SPLITS)
        check_positive("bench", self, "num_samples", "seeds", "selection_samples")
        check(all(w >= 0 for w in self.guidance_sweep), f"bench.guidance_sweep values must be >= 0; got {self.guidance_sweep}")
        check(len(set(self.guidance_sweep)) == len(self.guidance_sweep), f"bench.guidance_sweep repeats a value: {self.guidance_sweep}")

    def method(self, name: str) -> BenchMethod:
        """A method's entry: the recipe's, else a built-in variant's, else the defaults."""
        return self.methods.get(name) or BENCH_VARIANTS.get(name) or BenchMethod()


register_section("bench", BenchConfig, before="finetune")
