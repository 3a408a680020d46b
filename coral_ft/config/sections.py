"""The section schemas of the one typed configuration: what each setting is, its default (written
once, here) and what values it takes. Each section validates itself on construction; how values
are read from recipes, `--set` and flags is `coral_ft.config.loading`'s job.

Method-specific settings live in each objective's own settings dataclass (registered by the
objective module) under `[objective.<method>]`, so adding a method never edits this file. The
library functions below this layer (samplers, metrics) take these sections as plain objects;
they never import this package.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from coral_ft.config.coerce import build_section
from coral_ft.errors import check, check_choice, check_positive

DEVICES = ("auto", "cpu", "cuda")  # "cuda:N" is accepted too

# `--official-code`: train as the official CORAL code does (docs/defaults.md). Applied over the
# recipe and under --set, so any one of them can still be set otherwise.
OFFICIAL_CODE = {
    "model.label_drop": "per-batch",  # the whole batch's labels dropped with p_uncond
    "objective.regularise_dropped": False,  # SupCon and CBDM skipped on dropped batches
    "objective.coral.lambda_mode": "batch-mean",  # one SupCon value x mean lambda x tau_SC
}
PRECISIONS = ("no", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DATA_PLACEMENTS = ("auto", "always", "never")


@dataclass
class DataConfig:
    """Which images to train on (see `coral_ft.data.registry`)."""

    dataset: str = "digits-lt"
    root: str | None = None  # folder holding the data set's files; not needed for digits
    imbalance: float = 0.01  # rho of paper eq. 8 for the `-lt` data sets
    hflip: bool = True  # random horizontal flip during training
    image_size: int | None = None  # resizing data sets only (digits-lt, fashion-mnist-lt, imagefolder)
    # Batch resampling: a training batch draws class c with probability proportional to n_c^power,
    # with replacement (1: the data as it is; 0: every class alike; 0.5: square-root sampling, the
    # CCUA authors' --brs_factor 0.1 on rho = 0.01 data). Any method can use it.
    resample_power: float = 1.0

    def __post_init__(self) -> None:
        from coral_ft.data.registry import check_data_settings

        check_data_settings(self.dataset, self.root, self.imbalance, self.image_size)
        check(self.resample_power >= 0, f"data.resample_power must be >= 0; got {self.resample_power}")


@dataclass
class ModelConfig:
    """The U-Net preset, its diffusion schedule, conditioning and projection head."""

    preset: str = "tiny"
    conditional: bool = True  # false: an unconditional U-Net (no class embedding; ddpm only), e.g. a base to fine-tune
    p_uncond: float = 0.1  # probability that a training label is replaced by the null label
    label_drop: str = "per-sample"  # paper Algorithm 1; "per-batch" is the peers' variant
    head_dim: int = 128
    head_pooling: str = "avg"  # "avg" (paper) or "flatten"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    dropout: float | None = None  # None: the preset's own value

    def __post_init__(self) -> None:
        from coral_ft.models.presets import PRESETS

        check_choice("model.preset", self.preset, sorted(PRESETS))
        check(0.0 <= self.p_uncond < 1.0, f"model.p_uncond must be in [0, 1); got {self.p_uncond}")
        check_choice("model.label_drop", self.label_drop, ("per-sample", "per-batch"))
        check_choice("model.head_pooling", self.head_pooling, ("avg", "flatten"))
        check_positive("model", self, "head_dim")
        check(self.num_train_timesteps > 1, "model.num_train_timesteps must be > 1")
        check(0 < self.beta_start < self.beta_end < 1, "model betas need 0 < beta_start < beta_end < 1")
        check(self.dropout is None or 0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1); got {self.dropout}")


@dataclass
class ObjectiveConfig:
    """The training objective: a method name plus each method's own settings."""

    method: str = "ddpm"
    # Extra terms (SupCon, CBDM's) also on samples whose label was dropped for guidance, with their
    # true labels (paper Algorithm 1); false: only on samples that kept their label (the official code).
    regularise_dropped: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # method name -> settings dataclass

    def __post_init__(self) -> None:
        from coral_ft.objectives import OBJECTIVES

        check_choice("objective.method", self.method, sorted(OBJECTIVES))
        unknown = set(self.settings) - set(OBJECTIVES)
        check(not unknown, f"unknown objective section(s): {', '.join(sorted(unknown))}")
        self.settings = {
            name: given if dataclasses.is_dataclass(given) else _build(entry.settings_cls, given, f"objective.{name}")
            for name, entry in OBJECTIVES.items()
            for given in [self.settings.get(name, {})]
        }

    @property
    def active(self):
        """Settings of the selected method."""
        return self.settings[self.method]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. `batch_size` is the GLOBAL batch per optimiser step."""

    max_steps: int = 150_000
    batch_size: int = 128
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 5_000
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # decay min(ema_decay, (1+n)/(10+n)): useful EMA on short runs
    mixed_precision: str = "no"  # autocast: no, bf16 or fp16 (fp16 with a loss scaler)
    tf32: bool = True  # TF32 matmuls and convolutions on Ampere+ GPUs (no effect on CPUs)
    channels_last: bool = False  # NHWC memory format: faster convolutions on GPUs
    compile: bool = False  # torch.compile the U-Net (GPUs; the first steps pay for compilation)
    compile_mode: str = "default"  # torch.compile's mode: default, reduce-overhead (CUDA graphs), max-autotune
    # Where the uint8 data set and each batch's noise live: auto (the GPU when training on one and the
    # set fits in 8 GiB: indexing, flips and noise cost the host nothing), always (also on a CPU: the
    # GPU path, run by the CPU tests), never (the host).
    data_on_device: str = "auto"
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    sample_every: int = 5_000
    sample_grid: int = 10  # images per class in the periodic sample grid; 0: no grids (coral_ft.train.grid)
    report_to: str = "none"  # experiment tracking through accelerate: none, tensorboard or wandb

    def __post_init__(self) -> None:
        check(self.batch_size > 1, f"train.batch_size must be at least 2; got {self.batch_size}")
        check_positive("train", self, "max_steps", "grad_accum", "lr", "grad_clip")
        check(self.warmup_steps >= 0, "train.warmup_steps must be >= 0")
        check(0.0 <= self.ema_decay < 1.0, f"train.ema_decay must be in [0, 1); got {self.ema_decay}")
        check_choice("train.mixed_precision", self.mixed_precision, PRECISIONS)
        check_positive("train", self, "log_every", "checkpoint_every", "keep_checkpoints", "sample_every")
        check(self.sample_grid >= 0, f"train.sample_grid must be >= 0 (0: no sample grids); got {self.sample_grid}")
        check_choice("train.report_to", self.report_to, ("none", "tensorboard", "wandb"))
        check_choice("train.compile_mode", self.compile_mode, COMPILE_MODES)
        check_choice("train.data_on_device", self.data_on_device, DATA_PLACEMENTS)


@dataclass
class SampleConfig:
    """Sampling with classifier-free guidance (paper eq. 4: w = 0 means no guidance)."""

    guidance: float = 0.6
    sampler: str = "ddpm"  # ddpm (ancestral), ddim, dpm++, unipc, euler (diffusers' schedulers)
    steps: int | None = None  # None: the sampler's default (ddpm: every training timestep)
    eta: float = 0.0  # DDIM's eta (0: deterministic)
    clip_x0: bool = False  # clamp each step's x0 prediction to [-1, 1]; off as in the peers' sampler
    labels: str = "uniform"  # uniform (the paper), balanced, or a class list like 0,3,7
    seed: int = 0  # sample i depends on (seed, i) only
    batch_size: int = 256  # samples per forward batch (per process)
    precision: str = "no"  # autocast of the U-Net: no, bf16 or fp16
    compile: bool = False  # torch.compile the U-Net for sampling
    compile_mode: str = "default"  # torch.compile's mode; reduce-overhead replays each step as a CUDA graph
    tf32: bool = True  # TF32 matmuls and convolutions while sampling on Ampere+ GPUs (restored afterwards)

    def __post_init__(self) -> None:
        from coral_ft.sample.registry import SAMPLERS

        check(self.guidance >= 0, f"sample.guidance must be >= 0 (0 = no guidance); got {self.guidance}")
        check_choice("sample.sampler", self.sampler, list(SAMPLERS))
        check(self.steps is None or self.steps > 0, f"sample.steps must be positive; got {self.steps}")
        check(0.0 <= self.eta <= 1.0, f"sample.eta must be in [0, 1]; got {self.eta}")
        check(self.eta == 0 or self.sampler == "ddim", f"sample.eta applies to the ddim sampler only; got eta={self.eta} with {self.sampler}")
        check(bool(self.labels.strip()), "sample.labels must be uniform, balanced or a class list like 0,3,7")
        check_positive("sample", self, "batch_size")
        check_choice("sample.precision", self.precision, PRECISIONS)
        check_choice("sample.compile_mode", self.compile_mode, COMPILE_MODES)


@dataclass
class EvalConfig:
    """Metrics of generated samples against a balanced real reference (see docs/evaluation.md)."""

    # `coral-ft eval` adds is where the metric network has classifier logits (the classifier, or
    # clean-fid's Inception file): its default set holds only metrics that run
    metrics: list[str] = field(default_factory=lambda: ["fid"])
    # auto: the bench's small classifier for images under 32x32 (or a reference file made with
    # it), else TF-Inception; inception; classifier (coral_ft.bench.classifier)
    metric_network: str = "auto"
    classifier: str | None = None  # the classifier's file (trained there when missing); default beside the reference or samples
    resize: str = "clean"  # Inception resize: clean (clean-fid) or legacy-pytorch (the peers, the paper)
    recall_network: str = "vgg16"  # precision/recall features: vgg16 (the original metric) or inception
    k: int = 3  # neighbours of the precision/recall manifolds
    feature_batch_size: int = 64  # images per feature-network batch
    weights_dir: str | None = None  # else $CORAL_FT_WEIGHTS_DIR, then the clean-fid / torchvision caches
    prd_runs: int = 10  # k-means clusterings PRD averages (Sajjadi et al.: 10)

    def __post_init__(self) -> None:
        from coral_ft.metrics.registry import RESIZES, evaluated

        unknown = [m for m in self.metrics if m not in evaluated()]
        check(bool(self.metrics) and not unknown,
               f"eval.metrics: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(evaluated())}")
        check_choice("eval.resize", self.resize, RESIZES)
        check_choice("eval.recall_network", self.recall_network, ("vgg16", "inception"))
        check_choice("eval.metric_network", self.metric_network, METRIC_NETWORKS)
        check_positive("eval", self, "k", "feature_batch_size", "prd_runs")


LATENT_SPLITS = ("test", "train-full")  # balanced splits: every class alike
LATENT_CONDITIONS = ("true", "null")  # the label given to the U-Net: as in training, or the null label
LATENT_PLOTS = ("tsne", "umap")


@dataclass
class LatentsConfig:
    """`coral-ft latents`: which real images are embedded and how the bottleneck is scored."""

    split: str = "test"
    timesteps: list[int] = field(default_factory=lambda: [100, 500])
    per_class: int = 100  # images per class (fewer when a class has fewer)
    condition: str = "true"
    noised: bool = True  # false: clean images with the timestep given (the official code's plots)
    plots: list[str] = field(default_factory=lambda: ["tsne"])
    k: int = 10  # neighbours for purity and tail-into-head overlap
    head_fraction: float = 1 / 3  # share of classes counted as head (and as tail)
    metric: str = "euclidean"  # distance for the scores: euclidean or cosine
    seed: int = 0  # subsample, noise, t-SNE/UMAP and probe split
    batch_size: int = 256  # images per U-Net forward

    def __post_init__(self) -> None:
        if self.plots == ["none"]:
            self.plots = []
        check_choice("latents.split", self.split, LATENT_SPLITS)
        check(bool(self.timesteps), "latents.timesteps needs at least one timestep, e.g. [100, 500]")
        check(all(t >= 0 for t in self.timesteps), f"latents.timesteps must be >= 0; got {self.timesteps}")
        check(self.per_class >= 2, f"latents.per_class must be at least 2 (neighbours and a probe split); got {self.per_class}")
        check_choice("latents.condition", self.condition, LATENT_CONDITIONS)
        for plot in self.plots:
            check_choice("latents.plots", plot, LATENT_PLOTS)
        check_positive("latents", self, "k", "batch_size")
        check(0 < self.head_fraction <= 0.5, f"latents.head_fraction must be in (0, 0.5]; got {self.head_fraction}")
        check_choice("latents.metric", self.metric, ("euclidean", "cosine"))


BENCH_SCALES = ("paper", "small", "smoke")
METRIC_NETWORKS = ("auto", "inception", "classifier")


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

    arms: list[str] = field(default_factory=lambda: ["ddpm", "coral", "ddpm-lora", "coral-lora"])
    base: str = ""  # the user's base (any --base form); empty: the bench trains it (base_kind)
    # lt: a class-conditional DDPM trained on the long-tailed set; uncond-balanced: an unconditional
    # DDPM trained on the balanced set (fine-tuning adds a zero-initialised class embedding).
    base_kind: str = "lt"
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

    launcher: str = "local"
    jobs: int = 1  # local: trials at once
    gpus_per_trial: int = 1  # GPUs each trial gets (on a machine or a cluster with GPUs)
    cpus_per_trial: int = 0  # 0: local, the cores shared out between the jobs; slurm, 8
    partition: str = ""  # slurm: the partition (empty: the cluster's default)
    time_min: int = 24 * 60  # slurm: each trial's time limit; a pre-empted or timed-out trial is requeued
    mem_gb: int = 0  # slurm: memory per trial (0: the cluster's default)
    slurm: dict[str, Any] = field(default_factory=dict)  # further sbatch parameters (account, qos, constraint, ...)

    def __post_init__(self) -> None:
        check_choice("bench.launch.launcher", self.launcher, LAUNCHERS)
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
    num_samples: int = 50_000  # reported samples per method and seed (the paper: 50k)
    methods: dict[str, BenchMethod] = field(default_factory=dict)  # per-method settings; absent: defaults
    run: list[str] = field(default_factory=lambda: ["ddpm", "cbdm", "t2h", "coral"])  # methods to run
    scale: str = "paper"  # paper, small (a tenth, one GPU) or smoke (CPU plumbing check)
    seeds: int = 1  # training seeds per method (seed index i trains with train.seed + i)
    guidance_sweep: list[float] = field(default_factory=list)  # W values tried on a selection set; empty: no sweep
    selection_samples: int = 1_000  # samples per W on the selection set (its own sampling seed)
    # auto: TF-Inception for the paper's data sets, the bench's small classifier for digits,
    # Fashion-MNIST and the smoke scale; "classifier" also serves where Inception's weights are absent.
    metric_network: str = "auto"
    reference_split: str = ""  # the real images metrics compare against; empty: the data set's default
    protocol: str = "scratch"  # scratch: train every method from scratch; finetune: fine-tune one base per arm
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


@dataclass
class FinetuneConfig:
    """Fine-tuning a pretrained base (`coral-ft finetune`); unused when training from scratch."""

    base: str | None = None  # diffusers model folder, run directory, cached hub ID or a peers' ckpt_*.pt
    lora: bool = False  # False: every U-Net weight trains (full fine-tuning)
    rank: int = 8
    alpha: float = 8.0
    targets: list[str] = field(default_factory=list)  # module-name patterns; empty: the defaults
    # UNet2DConditionModel bases only: the fixed cross-attention input. None: zeros of shape
    # (context_length, cross_attention_dim); else a .safetensors file holding a "context" tensor.
    context: str | None = None
    context_length: int = 1

    def __post_init__(self) -> None:
        check_positive("finetune", self, "rank", "alpha", "context_length")
        check(
            all(t.strip() for t in self.targets),
            f"finetune.targets must be non-empty module names (e.g. to_q, conv1); got {self.targets}",
        )
        check(
            self.context is None or str(self.context).endswith(".safetensors"),
            f"finetune.context must be a .safetensors file holding a 'context' tensor; got {self.context!r}",
        )


@dataclass
class RuntimeConfig:
    """Where commands run. The same `--device` means the same thing in every command."""

    device: str = "auto"  # auto (a GPU when there is one), cpu, cuda or cuda:N
    # torch's CPU threads when a command runs on the CPU (0: torch's default, one per core). When
    # other jobs keep the cores busy, one thread is the fast choice: the CPU recipes' U-Nets train
    # 3.9x (micro) and 1.9x (small) faster on one thread than on two busy cores
    # (docs/measurements/cpu/cpu_threads.txt); the study scripts run one job per core with 1.
    threads: int = 0

    def __post_init__(self) -> None:
        check(self.device in DEVICES or self.device.startswith("cuda:"),
               f"runtime.device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        check(self.threads >= 0, f"runtime.threads must be >= 0 (0: torch's default); got {self.threads}")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "eval": EvalConfig,
    "latents": LatentsConfig,
    "bench": BenchConfig,
    "finetune": FinetuneConfig,
    "runtime": RuntimeConfig,
}


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    latents: LatentsConfig = field(default_factory=LatentsConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        out = _strip_none(dataclasses.asdict(self))
        objective = out.pop("objective")  # written as [objective] keys + [objective.<name>] tables
        settings = objective.pop("settings")
        return {"objective": {**objective, **settings}, **out}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _strip_none(value):
    # TOML has no null: an absent key means "use the default", which is what None means here.
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    return value


def _build(cls, values, where: str):
    return build_section(cls, values, where)
