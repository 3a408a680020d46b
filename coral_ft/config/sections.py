"""The section schemas of the one typed configuration: what each setting is, its default (written
once, here) and what values it takes. Each section validates itself on construction; how values
are read from recipes, `--set` and flags is `coral_ft.config.loading`'s job.

Method-specific settings live in each objective's own settings dataclass (registered by the
objective module) under `[objective.<method>]`, so adding a method never edits this file; the
bench's, in its own package above this one (coral_ft.bench.schema, added by `register_section`). The
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


def described(default: Any, help: str) -> Any:
    """A field with its description, written once: the CLI option that sets it shows it as its help."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


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
METRIC_NETWORKS = ("auto", "inception", "classifier")


@dataclass
class DataConfig:
    """Which images to train on (see `coral_ft.data.registry`)."""

    dataset: str = described("digits-lt", "Data set (`coral-ft data list`).")
    root: str | None = described(None, "Folder holding the data set's files; not needed for digits.")
    imbalance: float = described(0.01, "rho of paper eq. 8 for the -lt data sets.")
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

    preset: str = described("tiny", "U-Net preset.")
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

    method: str = described("ddpm", "The training objective.")
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
            name: given if dataclasses.is_dataclass(given) else build_section(method.settings_cls, given, f"objective.{name}")
            for name, method in OBJECTIVES.items()
            for given in [self.settings.get(name, {})]
        }

    @property
    def active(self):
        """Settings of the selected method."""
        return self.settings[self.method]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping."""

    max_steps: int = described(150_000, "Optimiser steps.")
    batch_size: int = described(128, "Training batch: the global batch per optimiser step.")
    grad_accum: int = described(1, "Micro-batches per optimiser step.")
    lr: float = described(2e-4, "Adam learning rate.")
    warmup_steps: int = 5_000
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # decay min(ema_decay, (1+n)/(10+n)): useful EMA on short runs
    mixed_precision: str = described("no", "Autocast: no, bf16 or fp16 (GPUs). A recipe's is a wish: fp32 where the device lacks it. On a CPU with native bf16 (AVX512-BF16, AMX) bf16 runs: a training step in 0.62x fp32's time (small, batch 64) and 0.52x (ddpm-cifar, batch 8), one thread (docs/measurements/cpu/bf16_cpu.txt).")
    tf32: bool = True  # TF32 matmuls and convolutions on Ampere+ GPUs (no effect on CPUs)
    channels_last: bool = False  # NHWC memory format: faster convolutions on GPUs
    compile: bool = described(False, "torch.compile the denoiser (GPUs; the first steps pay for compilation).")
    compile_mode: str = "default"  # torch.compile's mode: default, reduce-overhead (CUDA graphs), max-autotune
    # Where the uint8 data set and each batch's noise live: auto (the GPU when training on one and the
    # set fits in 8 GiB: indexing, flips and noise cost the host nothing), always (also on a CPU: the
    # GPU path, run by the CPU tests), never (the host).
    data_on_device: str = "auto"
    seed: int = described(0, "Seed of initialisation, data order and noise.")
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    sample_every: int = 5_000
    sample_grid: int = 10  # images per class in the periodic sample grid; 0: no grids (coral_ft.train.grid)
    report_to: str = described("none", "Experiment tracking through accelerate: none, tensorboard or wandb.")

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

    guidance: float = described(0.6, "w of paper eq. 4 (0 = no guidance; diffusers' guidance_scale is 1 + w).")
    sampler: str = described("ddpm", "Sampler (diffusers' schedulers).")
    steps: int | None = described(None, "Denoising steps (none: the sampler's own; ddpm: every training timestep).")
    eta: float = described(0.0, "DDIM's eta (0: deterministic).")
    clip_x0: bool = described(False, "Clamp each step's x0 prediction to [-1, 1] (off: the peers' sampler).")
    labels: str = described("uniform", "uniform (the paper), balanced, or a class list like 0,3,7 or cat,dog.")
    seed: int = described(0, "Same seed, same samples: sample i depends on (seed, i) only.")
    batch_size: int = described(256, "Samples per forward batch (per process).")
    precision: str = described("no", "Autocast of the U-Net while sampling: no, bf16 or fp16.")
    compile: bool = described(False, "torch.compile the U-Net for sampling.")
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

    metrics: list[str] = described(["fid"], "Metrics, comma-separated; none named: fid, plus is where the metric network has classifier logits (the classifier, or clean-fid's Inception file), so that the default holds only metrics that run.")
    metric_network: str = described("auto", "Feature network: auto (the bench's small classifier for images under 32x32 or a reference made with it, else TF-Inception), inception, or classifier (coral_ft.bench.classifier).")
    classifier: str | None = described(None, "The classifier's file: loaded, else trained on the reference and saved there (default: REF.classifier.pt beside a stats file, else in the samples' or --out's folder).")
    resize: str = described("clean", "Inception resize: clean (clean-fid) or legacy-pytorch (the peers' and the paper's).")
    recall_network: str = described("vgg16", "Precision/recall features: vgg16 (the original metric) or inception.")
    k: int = described(3, "Neighbours of the precision/recall manifolds.")
    feature_batch_size: int = described(64, "Images per feature-network batch.")
    weights_dir: str | None = described(None, "Folder with inception-2015-12-05.pt / vgg16-397923af.pth (else $CORAL_FT_WEIGHTS_DIR, then the clean-fid and torchvision caches).")
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

    split: str = described("test", "Balanced split whose images are embedded: test or train-full.")
    timesteps: list[int] = described([100, 500], "Noise levels, comma-separated, in 0..T-1.")
    per_class: int = described(100, "Images per class (fewer when a class has fewer).")
    condition: str = described("true", "Label given to the U-Net: true (as in training) or null (keeps the label embedding out).")
    noised: bool = described(True, "Noise the images to each timestep (paper eq. 1), or give them clean with the timestep (the official code's plots).")
    plots: list[str] = described(["tsne"], "Maps to draw: tsne, umap (comma-separated) or none.")
    k: int = described(10, "Neighbours for purity and tail-into-head overlap.")
    head_fraction: float = described(1 / 3, "Share of classes counted as head (and as tail).")
    metric: str = described("euclidean", "Distance for the scores: euclidean or cosine.")
    seed: int = described(0, "Seed of the subsample, the noise, t-SNE/UMAP and the probe split.")
    batch_size: int = described(256, "Images per U-Net forward.")

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


@dataclass
class FinetuneConfig:
    """Fine-tuning a pretrained base (`coral-ft finetune`); unused when training from scratch."""

    base: str | None = described(None, "The pretrained U-Net: diffusers folder, coral-ft run, cached hub ID or a peers' ckpt_*.pt.")
    lora: bool = described(False, "Train LoRA adapters (+ class embedding, head), or every weight (full fine-tuning).")
    rank: int = described(8, "LoRA rank r.")
    alpha: float = described(8.0, "LoRA alpha; the update is scaled by alpha / r.")
    targets: list[str] = described([], "Module-name suffixes to adapt, comma-separated (default: attention, ResNet convs, time projections).")
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

    device: str = described("auto", "auto (a GPU when there is one), cpu, cuda or cuda:N.")
    threads: int = described(0, "CPU threads when running on the CPU (0: torch's default, one per core). When other jobs keep the cores busy, one is the fast choice: the CPU recipes' U-Nets train 3.9x (micro) and 1.9x (small) faster on one thread than on two busy cores (docs/measurements/cpu/cpu_threads.txt).")

    def __post_init__(self) -> None:
        check(self.device in DEVICES or self.device.startswith("cuda:"),
               f"runtime.device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        check(self.threads >= 0, f"runtime.threads must be >= 0 (0: torch's default); got {self.threads}")


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    latents: LatentsConfig = field(default_factory=LatentsConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # The sections of the packages above this one (config.bench), which it cannot import, by name.
    registered: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        own = self.__dataclass_fields__
        self.registered = {name: self.registered.get(name) or cls() for name, cls in SECTIONS.items() if name not in own}

    def __getattr__(self, name: str) -> Any:
        # Reached only for names that are no field; pickle and copy ask it before __dict__ is filled.
        try:
            return self.__dict__["registered"][name]
        except KeyError:
            raise AttributeError(f"RunConfig has no section {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        out = _strip_none({name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS})
        objective = out.pop("objective")  # written as [objective] keys + [objective.<name>] tables
        settings = objective.pop("settings")
        return {"objective": {**objective, **settings}, **out}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


# Every section by name, in the order of a saved config.toml: RunConfig's own and those registered among them.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(RunConfig) if f.name != "registered"}


def register_section(name: str, cls: type, *, before: str) -> None:
    """Add the section of a package above this one (coral_ft.bench.schema's [bench]): read, checked
    and written like the sections here. `before`: the section it precedes in a saved config.toml."""
    entries, at = list(SECTIONS.items()), list(SECTIONS).index(before)
    SECTIONS.clear()
    SECTIONS.update([*entries[:at], (name, cls), *entries[at:]])


def _strip_none(value):
    # TOML has no null: an absent key means "use the default", which is what None means here.
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    return value
