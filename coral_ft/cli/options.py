"""CLI options that set configuration fields, declared once, shared by every command that takes them.

Each option names the config field it sets (`option("train.lr", "--lr", ...)`); its default is
"not given" (None), and its help is the field's description, with the field's default: both read
from the config dataclasses, so neither is written twice. `@takes(GROUP, ...)` adds option groups
to a command and hands the given ones to it as `flags` ({field: value}); `resolve_config` layers
them over a recipe (or a run's saved config) and `--set` overrides:

    dataclass defaults < recipe / saved run config < --set key=value < flags
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from coral_ft.config import OFFICIAL_CODE, SECTIONS, DataConfig, RunConfig, read_recipe, shipped_recipes
from coral_ft.config.loading import dotted

# the one resolution every command and the Python API use (the commands call these through `o.`)
from coral_ft.config.resolve import BUNDLES, recipe_names, was_given
from coral_ft.config.resolve import fit_precision as fitted_precision
from coral_ft.config.resolve import given_fields as given_fields
from coral_ft.config.resolve import implied_recipe as implied_recipe
from coral_ft.config.resolve import layered as layered
from coral_ft.config.resolve import resolve_config as resolve_config
from coral_ft.data.registry import DATASETS
from coral_ft.metrics.registry import evaluated
from coral_ft.models.presets import PRESETS
from coral_ft.objectives import method_names
from coral_ft.sample.registry import SAMPLERS, sampler_help

PANEL_DATA, PANEL_MODEL, PANEL_METHOD, PANEL_OPTIM = "Data", "Model", "Method", "Optimisation"
PANEL_LORA, PANEL_SAMPLE, PANEL_EVAL, PANEL_RUN, PANEL_LAUNCH = "LoRA", "Sampling", "Evaluation", "Run", "Launch"


@dataclass(frozen=True)
class Field:
    """Marks an option as setting a config field (a dotted path)."""

    path: str


@dataclass(frozen=True)
class Bundle:
    """Marks a flag as a named set of config values (applied over the recipe, under --set)."""

    values: tuple[tuple[str, Any], ...]


def _schema(path: str) -> tuple[Any, Any, str]:
    """A config field's default, type and description, read from the schemas alone: no section is
    built (building one validates it against the registries, which import torch)."""
    cls: Any = SECTIONS[path.split(".")[0]]
    *sections, name = path.split(".")[1:]
    for part in sections:  # nested sections, e.g. bench.finetune
        cls = typing.get_type_hints(cls)[part]
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    return default, typing.get_type_hints(cls)[name], spec.metadata["help"]


def _option_type(tp):
    """The type typer parses: lists come in as comma-separated text, Optional is unwrapped."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if typing.get_origin(tp) is list:
        return list[str]  # repeatable, each value comma-separated; joined again for the config
    return str if typing.get_origin(tp) is dict else tp


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def option(path: str, *names: str, panel: str, also: str = "", **kwargs):
    """An option that sets config field `path`; typer's default is None ("not given"). Its help is the
    field's description, then `also`: what only the CLI knows when it starts (the registries' names)."""
    default, tp, help = _schema(path)
    is_flag_pair = any("/" in n for n in names)
    if is_flag_pair:
        kwargs.setdefault("metavar", "")  # a flag takes no value: no type column in the help
    return Annotated[
        (bool if is_flag_pair else _option_type(tp)) | None,
        Field(path),
        typer.Option(*names, help=f"{help} {also}".rstrip(), rich_help_panel=panel, show_default=_show(default), **kwargs),
    ]


# -- names the help and the shell completion offer, read without importing torch -----------------
def dataset_names() -> list[str]:
    return sorted(DATASETS)


def preset_names() -> list[str]:
    return sorted(PRESETS)


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def completing(names):
    """A shell-completion callback offering `names()` that start with what was typed."""
    return lambda incomplete: [n for n in names() if n.startswith(incomplete)]


def _listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


# -- the option groups --------------------------------------------------------------------------
DATA = {
    "dataset": option("data.dataset", "--dataset", also=f"One of {_listed(dataset_names())}.", panel=PANEL_DATA, autocompletion=completing(dataset_names)),
    "data_root": option("data.root", "--data-root", panel=PANEL_DATA),
    "imbalance": option("data.imbalance", "--imbalance", panel=PANEL_DATA),
}
MODEL = {
    "preset": option("model.preset", "--preset", also=f"One of {_listed(preset_names())}.", panel=PANEL_MODEL, autocompletion=completing(preset_names)),
}
METHOD = {
    "method": option("objective.method", "--method", also=f"One of {_listed(method_names())}.", panel=PANEL_METHOD, autocompletion=completing(method_names)),
    "official_code": Annotated[bool, Bundle(tuple(OFFICIAL_CODE.items())), typer.Option(
        "--official-code", metavar="", rich_help_panel=PANEL_METHOD,
        help="Train as the official CORAL code: " + ", ".join(f"{k}={_show(v)}" for k, v in OFFICIAL_CODE.items()) + " (docs/defaults.md).")],
}
OPTIM = {
    "max_steps": option("train.max_steps", "--max-steps", panel=PANEL_OPTIM, min=1),
    "batch_size": option("train.batch_size", "--batch-size", panel=PANEL_OPTIM, min=2),
    "grad_accum": option("train.grad_accum", "--grad-accum", panel=PANEL_OPTIM, min=1),
    "lr": option("train.lr", "--lr", panel=PANEL_OPTIM),
    "seed": option("train.seed", "--seed", panel=PANEL_OPTIM),
    "mixed_precision": option("train.mixed_precision", "--mixed-precision", panel=PANEL_OPTIM),
    "compile": option("train.compile", "--compile/--no-compile", panel=PANEL_OPTIM),
}
LORA = {
    "base": option("finetune.base", "--base", panel=PANEL_MODEL),
    "lora": option("finetune.lora", "--lora/--full", panel=PANEL_LORA),
    "rank": option("finetune.rank", "--rank", panel=PANEL_LORA, min=1),
    "lora_alpha": option("finetune.alpha", "--lora-alpha", panel=PANEL_LORA),
    "lora_targets": option("finetune.targets", "--lora-targets", panel=PANEL_LORA),
}
TRACKING = {
    "report_to": option("train.report_to", "--report-to", panel=PANEL_RUN),
}
DEVICE = {
    "device": option("runtime.device", "--device", panel=PANEL_RUN),
    "threads": option("runtime.threads", "--threads", panel=PANEL_RUN, min=0),
}
SAMPLING = {
    "guidance": option("sample.guidance", "--guidance", panel=PANEL_SAMPLE),
    "sampler": option("sample.sampler", "--sampler", also=f"{sampler_help()}.", panel=PANEL_SAMPLE, autocompletion=completing(sampler_names)),
    "steps": option("sample.steps", "--steps", panel=PANEL_SAMPLE, min=1),
    "eta": option("sample.eta", "--eta", panel=PANEL_SAMPLE),
    "clip_x0": option("sample.clip_x0", "--clip-x0/--no-clip-x0", panel=PANEL_SAMPLE),
    "labels": option("sample.labels", "--labels", panel=PANEL_SAMPLE),
    "sample_seed": option("sample.seed", "--sample-seed", panel=PANEL_SAMPLE),
    "sample_batch_size": option("sample.batch_size", "--sample-batch-size", panel=PANEL_SAMPLE, min=1),
    "precision": option("sample.precision", "--precision", panel=PANEL_SAMPLE),
    "sample_compile": option("sample.compile", "--compile/--no-compile", panel=PANEL_SAMPLE),
}
EVAL = {
    "metrics": option("eval.metrics", "--metrics", also=f"Any of {_listed(evaluated())}.", panel=PANEL_EVAL),
    "metric_network": option("eval.metric_network", "--metric-network", panel=PANEL_EVAL),
    "classifier": option("eval.classifier", "--classifier", panel=PANEL_EVAL),
    "resize": option("eval.resize", "--resize", panel=PANEL_EVAL),
    "recall_network": option("eval.recall_network", "--recall-network", panel=PANEL_EVAL),
    "k": option("eval.k", "--k", panel=PANEL_EVAL, min=1),
    "feature_batch_size": option("eval.feature_batch_size", "--feature-batch-size", panel=PANEL_EVAL, min=1),
    "weights_dir": option("eval.weights_dir", "--weights-dir", panel=PANEL_EVAL),
}
LATENTS = {
    "split": option("latents.split", "--split", panel=PANEL_EVAL),
    "timesteps": option("latents.timesteps", "--timesteps", panel=PANEL_EVAL),
    "per_class": option("latents.per_class", "--per-class", panel=PANEL_EVAL, min=2),
    "condition": option("latents.condition", "--condition", panel=PANEL_EVAL),
    "noised": option("latents.noised", "--noised/--clean", panel=PANEL_EVAL),
    "plot": option("latents.plots", "--plot", panel=PANEL_EVAL),
    "latents_k": option("latents.k", "--k", panel=PANEL_EVAL, min=1),
    "head_fraction": option("latents.head_fraction", "--head-fraction", panel=PANEL_EVAL),
    "metric": option("latents.metric", "--metric", panel=PANEL_EVAL),
    "latents_seed": option("latents.seed", "--seed", panel=PANEL_EVAL),
    "forward_batch_size": option("latents.batch_size", "--forward-batch-size", panel=PANEL_EVAL, min=1),
}
BENCH = {
    "methods": option("bench.run", "--methods", also=f"Objectives: {_listed(method_names())}.", panel=PANEL_METHOD),
    "scale": option("bench.scale", "--scale", panel=PANEL_RUN),
    "seeds": option("bench.seeds", "--seeds", panel=PANEL_RUN, min=1),
    "guidance_sweep": option("bench.guidance_sweep", "--guidance-sweep", panel=PANEL_SAMPLE),
    "selection_samples": option("bench.selection_samples", "--selection-samples", panel=PANEL_SAMPLE, min=1),
    "num_samples": option("bench.num_samples", "--num-samples", panel=PANEL_SAMPLE, min=1),
    "protocol": option("bench.protocol", "--protocol", panel=PANEL_METHOD),
    "arms": option("bench.finetune.arms", "--arms", panel=PANEL_METHOD),
    "base": option("bench.finetune.base", "--base", panel=PANEL_METHOD),
    "base_kind": option("bench.finetune.base_kind", "--base-kind", panel=PANEL_METHOD),
    "jobs": option("bench.launch.jobs", "--jobs", panel=PANEL_LAUNCH, min=1),
    "gpus_per_trial": option("bench.launch.gpus_per_trial", "--gpus-per-trial", panel=PANEL_LAUNCH, min=0),
    "cpus_per_trial": option("bench.launch.cpus_per_trial", "--cpus-per-trial", panel=PANEL_LAUNCH, min=0),
    "launcher": option("bench.launch.launcher", "--launcher", panel=PANEL_LAUNCH),
    "partition": option("bench.launch.partition", "--partition", panel=PANEL_LAUNCH),
    "time_min": option("bench.launch.time_min", "--time-min", panel=PANEL_LAUNCH, min=1),
    "wait": option("bench.launch.wait", "--wait/--no-wait", panel=PANEL_LAUNCH),
}

Recipe = Annotated[str | None, typer.Option("--recipe", help="TOML recipe: a file or a shipped name (`coral-ft config recipes`).", rich_help_panel=PANEL_RUN, autocompletion=completing(recipe_names))]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override any config field: section.key=value (repeatable).", rich_help_panel=PANEL_RUN)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", metavar="", help="Show progress bars.", rich_help_panel=PANEL_RUN)]
DryRun = Annotated[bool, typer.Option("--dry-run", metavar="", help="Print the resolved configuration (and plan) and stop.", rich_help_panel=PANEL_RUN)]


def _marks(annotation, kind: type) -> list:
    return [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, kind)]


@functools.cache
def recipe_values() -> dict[str, dict[str, Any]]:
    """dotted field -> {recipe name: value} for every field some shipped recipe sets (TOML only:
    no torch; read when a command that trains from a recipe is declared)."""

    values: dict[str, dict[str, Any]] = {}
    for name, path in sorted(shipped_recipes().items()):
        for key, value in dotted({k: v for k, v in read_recipe(path).items() if k != "bench"}).items():
            values.setdefault(key, {})[name] = value
    return values


def _recipe_default(annotation):
    """The option with its help's default as it applies where a command starts from a data set's
    recipe: a field some shipped recipe sets reads "from the recipe; digits-lt: 800" (the value of
    the default data set's recipe, else the field's own default)."""
    fields = _marks(annotation, Field)
    if not fields or fields[0].path == "data.dataset" or fields[0].path not in recipe_values():
        return annotation
    path, dataset = fields[0].path, DataConfig.dataset
    value = recipe_values()[path].get(dataset, _schema(path)[0])
    info = copy.copy(next(m for m in annotation.__metadata__ if isinstance(m, typer.models.OptionInfo)))
    info.show_default = f"from the recipe; {dataset}: {_show(value)}"
    metadata = [info if isinstance(m, typer.models.OptionInfo) else m for m in annotation.__metadata__]
    return Annotated[(annotation.__origin__, *metadata)]


def takes(*groups: dict, recipe_defaults: bool = False):
    """Add option groups to a command. The command receives the config-field options it was given
    as `flags` ({dotted field: value}; options left out are absent). `recipe_defaults`: the command
    starts from a data set's recipe (train, finetune), so its help says which defaults a recipe sets."""

    def decorate(func):
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "flags"]
        shown = _recipe_default if recipe_defaults else (lambda ann: ann)
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=shown(ann))
                 for group in groups for name, ann in group.items()]
        params = own + extra
        field_of = {p.name: m.path for p in params for m in _marks(p.annotation, Field)}
        bundle_of = {p.name: dict(m.values) for p in params for m in _marks(p.annotation, Bundle)}

        @functools.wraps(func)
        def command(**kwargs):
            flags = {field_of[n]: kwargs.pop(n) for n in list(kwargs) if n in field_of}
            # Repeated list options (--lora-targets a,b --lora-targets c) become one comma list.
            flags = {k: ",".join(v) if isinstance(v, list) else v for k, v in flags.items() if v not in (None, [])}
            bundles = [bundle_of[n] for n in list(kwargs) if n in bundle_of and kwargs.pop(n)]
            if bundles:
                flags[BUNDLES] = bundles
            return func(**kwargs, flags=flags)

        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def fit_precision(config: RunConfig, sets: list[str] | None = None, flags: dict[str, Any] | None = None) -> RunConfig:
    """train.mixed_precision for the device the run trains on (coral_ft.config.resolve.fit_precision),
    its note said once on stderr."""
    config, note = fitted_precision(config, was_given("train.mixed_precision", sets, flags))
    if note:
        typer.secho(note, err=True)
    return config


