"""Typed run configuration: one source of truth for every command.

A run is described by `RunConfig` (data, model, objective, train, sample sections). Values come
from, in increasing precedence: the dataclass defaults, a TOML recipe (`recipes/*.toml`),
dotted `--set section.key=value` overrides, and explicit CLI flags. Every dataclass validates
itself on construction, so a bad value is rejected before any work starts. The resolved config
is written next to the run as `config.toml` and reloads with `load_config`.

Method-specific settings live in the objective's own settings dataclass (registered by the
objective module), under `[objective.<method>]`, so adding a method never edits this file.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from coral_ft.errors import ConfigError


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _check_choice(name: str, value: str, choices) -> None:
    _check(value in choices, f"{name} must be one of {', '.join(sorted(choices))}; got {value!r}")


@dataclass
class DataConfig:
    """Which images to train on (see `coral_ft.data.registry`)."""

    dataset: str = "digits-lt"
    root: str | None = None  # folder holding the data set's files; not needed for digits
    imbalance: float = 0.01  # rho of paper eq. 8 for the `-lt` data sets
    hflip: bool = True  # random horizontal flip during training
    image_size: int | None = None  # imagefolder: resize to this square size; digits-lt: 8 (native) or upsampled (default 16)

    def __post_init__(self) -> None:
        from coral_ft.data.registry import DATASETS

        _check_choice("data.dataset", self.dataset, DATASETS)
        _check(
            0.0 < self.imbalance <= 1.0,
            f"data.imbalance (rho) must be in (0, 1]; got {self.imbalance}",
        )
        _check(
            self.image_size is None or self.image_size >= 8,
            f"data.image_size must be at least 8; got {self.image_size}",
        )
        _check(
            self.image_size is None or DATASETS[self.dataset].resizes,
            f"data.image_size applies only to digits-lt and imagefolder; {self.dataset} has a fixed size: remove it",
        )


@dataclass
class ModelConfig:
    """The U-Net preset, its diffusion schedule, conditioning and projection head."""

    preset: str = "tiny"
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

        _check_choice("model.preset", self.preset, PRESETS)
        _check(0.0 <= self.p_uncond < 1.0, f"model.p_uncond must be in [0, 1); got {self.p_uncond}")
        _check_choice("model.label_drop", self.label_drop, {"per-sample", "per-batch"})
        _check_choice("model.head_pooling", self.head_pooling, {"avg", "flatten"})
        _check(self.head_dim > 0, f"model.head_dim must be positive; got {self.head_dim}")
        _check(self.num_train_timesteps > 1, "model.num_train_timesteps must be > 1")
        _check(0 < self.beta_start < self.beta_end < 1, "model betas need 0 < beta_start < beta_end < 1")
        _check(
            self.dropout is None or 0.0 <= self.dropout < 1.0,
            f"model.dropout must be in [0, 1); got {self.dropout}",
        )


@dataclass
class ObjectiveConfig:
    """The training objective: a method name plus each method's own settings."""

    method: str = "ddpm"
    settings: dict[str, Any] = field(default_factory=dict)  # method name -> settings dataclass

    def __post_init__(self) -> None:
        from coral_ft.objectives import OBJECTIVES

        _check_choice("objective.method", self.method, OBJECTIVES)
        resolved = {}
        for name, entry in OBJECTIVES.items():
            given = self.settings.get(name, {})
            if dataclasses.is_dataclass(given):
                resolved[name] = given
            else:
                resolved[name] = _build(entry.settings_cls, given, f"objective.{name}")
        unknown = set(self.settings) - set(OBJECTIVES)
        _check(not unknown, f"unknown objective section(s): {', '.join(sorted(unknown))}")
        self.settings = resolved

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
    mixed_precision: str = "no"
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    sample_every: int = 5_000
    sample_grid: int = 10  # images per class in the periodic sample grid

    def __post_init__(self) -> None:
        _check(self.max_steps > 0, f"train.max_steps must be positive; got {self.max_steps}")
        _check(self.batch_size > 1, f"train.batch_size must be at least 2; got {self.batch_size}")
        _check(self.grad_accum >= 1, f"train.grad_accum must be >= 1; got {self.grad_accum}")
        _check(self.lr > 0, f"train.lr must be positive; got {self.lr}")
        _check(self.warmup_steps >= 0, "train.warmup_steps must be >= 0")
        _check(self.grad_clip > 0, f"train.grad_clip must be positive; got {self.grad_clip}")
        _check(0.0 <= self.ema_decay < 1.0, f"train.ema_decay must be in [0, 1); got {self.ema_decay}")
        _check_choice("train.mixed_precision", self.mixed_precision, {"no", "bf16", "fp16"})
        for name in ("log_every", "checkpoint_every", "keep_checkpoints", "sample_every", "sample_grid"):
            _check(getattr(self, name) > 0, f"train.{name} must be positive; got {getattr(self, name)}")


@dataclass
class SampleConfig:
    """Sampling with classifier-free guidance (paper eq. 4: w = 0 means no guidance)."""

    guidance: float = 0.6
    sampler: str = "ddpm"  # "ddpm": 1000-step ancestral, "ddim": `steps` steps
    steps: int = 100  # DDIM steps; the DDPM sampler always takes num_train_timesteps
    eta: float = 0.0  # DDIM eta
    batch_size: int = 256

    def __post_init__(self) -> None:
        _check(self.guidance >= 0, f"sample.guidance must be >= 0; got {self.guidance}")
        _check_choice("sample.sampler", self.sampler, {"ddpm", "ddim"})
        _check(self.steps > 0, f"sample.steps must be positive; got {self.steps}")
        _check(0.0 <= self.eta <= 1.0, f"sample.eta must be in [0, 1]; got {self.eta}")
        _check(self.batch_size > 0, f"sample.batch_size must be positive; got {self.batch_size}")


@dataclass
class FinetuneConfig:
    """Fine-tuning a pretrained base (`coral-ft finetune`); unused when training from scratch."""

    base: str | None = None  # diffusers model folder, run directory or hub ID in the local cache
    lora: bool = False  # False: every U-Net weight trains (full fine-tuning)
    rank: int = 8
    alpha: float = 8.0
    targets: list[str] = field(default_factory=list)  # module-name patterns; empty: the defaults
    # UNet2DConditionModel bases only: the fixed cross-attention input. None: zeros of shape
    # (context_length, cross_attention_dim); else a .safetensors file holding a "context" tensor.
    context: str | None = None
    context_length: int = 1

    def __post_init__(self) -> None:
        _check(self.rank > 0, f"finetune.rank must be positive; got {self.rank}")
        _check(self.alpha > 0, f"finetune.alpha must be positive; got {self.alpha}")
        _check(self.context_length > 0, f"finetune.context_length must be positive; got {self.context_length}")
        _check(
            all(isinstance(t, str) and t.strip() for t in self.targets),
            f"finetune.targets must be non-empty module names (e.g. to_q, conv1); got {self.targets}",
        )
        _check(
            self.context is None or str(self.context).endswith(".safetensors"),
            f"finetune.context must be a .safetensors file holding a 'context' tensor; got {self.context!r}",
        )


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form tables (e.g. [bench]) kept verbatim

    def to_dict(self) -> dict[str, Any]:
        out = _strip_none(asdict(self))
        objective = out.pop("objective")  # written as [objective] method + [objective.<name>] tables
        out["objective"] = {"method": objective["method"], **objective["settings"]}
        out.update(out.pop("extra"))  # free tables go back to the top level they came from
        return out


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "finetune": FinetuneConfig,
}


def _strip_none(value):
    # TOML has no null: an absent key means "use the default", which is what None means here.
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    return value


def _build(cls, values: Mapping[str, Any], where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    _check(not unknown, f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))} (known: {', '.join(sorted(names))})")
    try:
        return cls(**values)
    except TypeError as exc:  # wrong value type, e.g. a table where a number belongs
        raise ConfigError(f"[{where}]: {exc}") from None


def config_from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from nested plain data (a parsed recipe)."""
    raw = dict(raw)
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        section = dict(raw.pop(name, {}) or {})
        if name == "objective":
            method = section.pop("method", ObjectiveConfig.method)
            settings = {k: section.pop(k) for k in list(section) if isinstance(section[k], dict)}
            section = {"method": method, "settings": settings, **section}
        kwargs[name] = _build(cls, section, name)
    kwargs["extra"] = raw  # e.g. [bench] tables, read by the commands that need them
    return RunConfig(**kwargs)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`"train.lr=1e-4"` -> (["train", "lr"], 1e-4); values are parsed as TOML, else kept as text."""
    key, sep, text = item.partition("=")
    _check(bool(sep) and key.strip() != "", f"--set expects key=value (e.g. train.lr=1e-4); got {item!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides (`section.key=value` strings or a {dotted: value} map) to raw data."""
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for path, value in items:
        path = path.split(".") if isinstance(path, str) else path
        _check(path[0] in SECTIONS or path[0] in raw, f"unknown config section {path[0]!r} in override {'.'.join(path)}")
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            _check(isinstance(node, dict), f"{'.'.join(path)}: {part} is not a table")
        node[path[-1]] = value
    return raw


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path} (see recipes/ for the shipped recipes)")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None


def load_config(
    recipe: str | Path | None = None,
    overrides: list[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """Recipe file (optional) + dotted overrides -> validated RunConfig."""
    raw = read_recipe(recipe) if recipe is not None else {}
    return config_from_dict(apply_overrides(raw, overrides))


def save_config(config: RunConfig, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(config.to_dict()))
    tmp.replace(path)
