"""CLI options that set configuration fields, declared once, shared by every command that takes them.

Each option names the config field it sets (`option("train.lr", "--lr", ...)`); its default is
"not given" (None) and its help shows the field's default, read from the config dataclasses, so
no default is written twice. `@takes(GROUP, ...)` adds option groups to a command and hands the
given ones to it as `flags` ({field: value}); `resolve_config` layers them over a recipe (or a
run's saved config) and `--set` overrides:

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

from coral_ft.config import OFFICIAL_CODE, SECTIONS, DataConfig, RunConfig, read_recipe

# the one resolution every command and the Python API use (the commands call these through `o.`)
from coral_ft.config.resolve import BUNDLES, recipe_names, was_given
from coral_ft.config.resolve import fit_precision as fitted_precision
from coral_ft.config.resolve import implied_recipe as implied_recipe
from coral_ft.config.resolve import layered as layered
from coral_ft.config.resolve import merged as merged
from coral_ft.config.resolve import resolve_config as resolve_config
from coral_ft.objectives import method_names

PANEL_DATA, PANEL_MODEL, PANEL_METHOD, PANEL_OPTIM = "Data", "Model", "Method", "Optimisation"
PANEL_LORA, PANEL_SAMPLE, PANEL_EVAL, PANEL_RUN = "LoRA", "Sampling", "Evaluation", "Run"
PANEL_LAUNCH = "Launch"


@dataclass(frozen=True)
class Field:
    """Marks an option as setting a config field (a dotted path)."""

    path: str


@dataclass(frozen=True)
class Bundle:
    """Marks a flag as a named set of config values (applied over the recipe, under --set)."""

    values: tuple[tuple[str, Any], ...]




def _default_and_type(path: str) -> tuple[Any, Any]:
    """The dataclass default of a config field and its Python type, read from the schemas alone: no
    section is built (building one validates it against the registries, which import torch)."""
    cls: Any = SECTIONS[path.split(".")[0]]
    *sections, name = path.split(".")[1:]
    for part in sections:  # nested sections, e.g. bench.finetune
        cls = typing.get_type_hints(cls)[part]
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    return default, typing.get_type_hints(cls)[name]


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


def option(path: str, *names: str, help: str, panel: str, **kwargs):
    """An option that sets config field `path`; typer's default is None ("not given")."""
    default, tp = _default_and_type(path)
    is_flag_pair = any("/" in n for n in names)
    if is_flag_pair:
        kwargs.setdefault("metavar", "")  # a flag takes no value: no type column in the help
    return Annotated[
        (bool if is_flag_pair else _option_type(tp)) | None,
        Field(path),
        typer.Option(*names, help=help, rich_help_panel=panel, show_default=_show(default), **kwargs),
    ]


# -- names the help and the shell completion offer, read without importing torch -----------------
def dataset_names() -> list[str]:
    from coral_ft.data.registry import DATASETS

    return sorted(DATASETS)


def preset_names() -> list[str]:
    from coral_ft.models.presets import PRESETS

    return sorted(PRESETS)


def sampler_names() -> list[str]:
    from coral_ft.sample.registry import SAMPLERS

    return list(SAMPLERS)


def _sampler_help() -> str:
    from coral_ft.sample.registry import sampler_help

    return sampler_help()


def _evaluated() -> list[str]:
    from coral_ft.metrics.registry import evaluated

    return evaluated()


def completing(names):
    """A shell-completion callback offering `names()` that start with what was typed."""
    return lambda incomplete: [n for n in names() if n.startswith(incomplete)]


def _listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


# -- the option groups --------------------------------------------------------------------------
DATA = {
    "dataset": option("data.dataset", "--dataset", help=f"Data set: {_listed(dataset_names())} (`coral-ft data list`).", panel=PANEL_DATA, autocompletion=completing(dataset_names)),
    "data_root": option("data.root", "--data-root", help="Folder holding the data set's files.", panel=PANEL_DATA),
    "imbalance": option("data.imbalance", "--imbalance", help="rho of paper eq. 8 for -lt data sets.", panel=PANEL_DATA),
}
MODEL = {
    "preset": option("model.preset", "--preset", help=f"U-Net preset: {_listed(preset_names())}.", panel=PANEL_MODEL, autocompletion=completing(preset_names)),
}
METHOD = {
    "method": option("objective.method", "--method", help=f"Objective: {_listed(method_names())}.", panel=PANEL_METHOD, autocompletion=completing(method_names)),
    "official_code": Annotated[bool, Bundle(tuple(OFFICIAL_CODE.items())), typer.Option(
        "--official-code", metavar="", rich_help_panel=PANEL_METHOD,
        help="Train as the official CORAL code: " + ", ".join(f"{k}={_show(v)}" for k, v in OFFICIAL_CODE.items()) + " (docs/defaults.md).")],
}
OPTIM = {
    "max_steps": option("train.max_steps", "--max-steps", help="Optimiser steps.", panel=PANEL_OPTIM, min=1),
    "batch_size": option("train.batch_size", "--batch-size", help="Training batch: the global batch per optimiser step.", panel=PANEL_OPTIM, min=2),
    "grad_accum": option("train.grad_accum", "--grad-accum", help="Micro-batches per optimiser step.", panel=PANEL_OPTIM, min=1),
    "lr": option("train.lr", "--lr", help="Adam learning rate.", panel=PANEL_OPTIM),
    "seed": option("train.seed", "--seed", help="Seed of initialisation, data order and noise.", panel=PANEL_OPTIM),
    "mixed_precision": option("train.mixed_precision", "--mixed-precision", help="Autocast: no, bf16 or fp16 (GPUs). A recipe's is a wish: fp32 where the device lacks it. On a CPU with native bf16 (AVX512-BF16, AMX) bf16 runs: a training step in 0.62x fp32's time (small, batch 64) and 0.52x (ddpm-cifar, batch 8), one thread (docs/measurements/cpu/bf16_cpu.txt).", panel=PANEL_OPTIM),
    "compile": option("train.compile", "--compile/--no-compile", help="torch.compile the denoiser (GPUs).", panel=PANEL_OPTIM),
}
LORA = {
    "base": option("finetune.base", "--base", help="The pretrained U-Net: diffusers folder, coral-ft run, cached hub ID or a peers' ckpt_*.pt.", panel=PANEL_MODEL),
    "lora": option("finetune.lora", "--lora/--full", help="Train LoRA adapters (+ class embedding, head) or every weight.", panel=PANEL_LORA),
    "rank": option("finetune.rank", "--rank", help="LoRA rank r.", panel=PANEL_LORA, min=1),
    "lora_alpha": option("finetune.alpha", "--lora-alpha", help="LoRA alpha; the update is scaled by alpha / r.", panel=PANEL_LORA),
    "lora_targets": option("finetune.targets", "--lora-targets", help="Module-name suffixes to adapt, comma-separated (default: attention, ResNet convs, time projections).", panel=PANEL_LORA),
}
TRACKING = {
    "report_to": option("train.report_to", "--report-to", help="Experiment tracking: none, tensorboard or wandb.", panel=PANEL_RUN),
}
DEVICE = {
    "device": option("runtime.device", "--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N.", panel=PANEL_RUN),
    "threads": option("runtime.threads", "--threads", help="CPU threads when running on the CPU (0: torch's default, one per core).", panel=PANEL_RUN, min=0),
}
SAMPLING = {
    "guidance": option("sample.guidance", "--guidance", help="w of paper eq. 4 (0 = no guidance; diffusers' guidance_scale is 1 + w).", panel=PANEL_SAMPLE),
    "sampler": option("sample.sampler", "--sampler", help=f"Sampler: {_sampler_help()}.", panel=PANEL_SAMPLE, autocompletion=completing(sampler_names)),
    "steps": option("sample.steps", "--steps", help="Denoising steps (default: the sampler's own, see --sampler).", panel=PANEL_SAMPLE, min=1),
    "eta": option("sample.eta", "--eta", help="DDIM eta (0 = deterministic).", panel=PANEL_SAMPLE),
    "clip_x0": option("sample.clip_x0", "--clip-x0/--no-clip-x0", help="Clamp each step's x0 prediction (off: the peers' sampler).", panel=PANEL_SAMPLE),
    "labels": option("sample.labels", "--labels", help="uniform, balanced, or a class list like 0,3,7 or cat,dog.", panel=PANEL_SAMPLE),
    "sample_seed": option("sample.seed", "--sample-seed", help="Same seed, same samples.", panel=PANEL_SAMPLE),
    "sample_batch_size": option("sample.batch_size", "--sample-batch-size", help="Samples per forward batch (per process).", panel=PANEL_SAMPLE, min=1),
    "precision": option("sample.precision", "--precision", help="Autocast of the U-Net while sampling: no, bf16 or fp16.", panel=PANEL_SAMPLE),
    "sample_compile": option("sample.compile", "--compile/--no-compile", help="torch.compile the U-Net for sampling.", panel=PANEL_SAMPLE),
}
EVAL = {
    "metrics": option("eval.metrics", "--metrics", help=f"Comma list of {_listed(_evaluated())} (none named: fid, and is where the metric network has logits).", panel=PANEL_EVAL),
    "metric_network": option("eval.metric_network", "--metric-network", help="Feature network: auto (the bench's small classifier for images under 32x32 or a reference made with it, else TF-Inception), inception, or classifier.", panel=PANEL_EVAL),
    "classifier": option("eval.classifier", "--classifier", help="The classifier's file: loaded, else trained on the reference and saved there (default: REF.classifier.pt beside a stats file, else in the samples' or --out's folder).", panel=PANEL_EVAL),
    "resize": option("eval.resize", "--resize", help="Inception resize: clean (clean-fid) or legacy-pytorch (the peers' and the paper's).", panel=PANEL_EVAL),
    "recall_network": option("eval.recall_network", "--recall-network", help="Precision/recall features: vgg16 (the original metric) or inception.", panel=PANEL_EVAL),
    "k": option("eval.k", "--k", help="Neighbours of the precision/recall manifolds.", panel=PANEL_EVAL, min=1),
    "feature_batch_size": option("eval.feature_batch_size", "--feature-batch-size", help="Images per feature-network batch.", panel=PANEL_EVAL, min=1),
    "weights_dir": option("eval.weights_dir", "--weights-dir", help="Folder with inception-2015-12-05.pt / vgg16-397923af.pth (else $CORAL_FT_WEIGHTS_DIR, then the clean-fid and torchvision caches).", panel=PANEL_EVAL),
}
LATENTS = {
    "split": option("latents.split", "--split", help="Balanced split whose images are embedded: test or train-full.", panel=PANEL_EVAL),
    "timesteps": option("latents.timesteps", "--timesteps", help="Noise levels, comma-separated, in 0..T-1.", panel=PANEL_EVAL),
    "per_class": option("latents.per_class", "--per-class", help="Images per class (fewer when a class has fewer).", panel=PANEL_EVAL, min=2),
    "condition": option("latents.condition", "--condition", help="Label given to the U-Net: true (as in training) or null (keeps the label embedding out).", panel=PANEL_EVAL),
    "noised": option("latents.noised", "--noised/--clean", help="Noise the images to each timestep (paper eq. 1), or give them clean with the timestep (the official code's plots).", panel=PANEL_EVAL),
    "plot": option("latents.plots", "--plot", help="Maps to draw: tsne, umap (comma-separated) or none.", panel=PANEL_EVAL),
    "latents_k": option("latents.k", "--k", help="Neighbours for purity and tail-into-head overlap.", panel=PANEL_EVAL, min=1),
    "head_fraction": option("latents.head_fraction", "--head-fraction", help="Share of classes counted as head (and as tail).", panel=PANEL_EVAL),
    "metric": option("latents.metric", "--metric", help="Distance for the scores: euclidean or cosine.", panel=PANEL_EVAL),
    "latents_seed": option("latents.seed", "--seed", help="Seed of the subsample, the noise, t-SNE/UMAP and the probe split.", panel=PANEL_EVAL),
    "forward_batch_size": option("latents.batch_size", "--forward-batch-size", help="Images per U-Net forward.", panel=PANEL_EVAL, min=1),
}
BENCH = {
    "methods": option("bench.run", "--methods", help=f"Comma-separated methods to run: {_listed(method_names())}, or a variant (coral-null, a key of the recipe's bench.methods table), each at the recipe's W.", panel=PANEL_METHOD),
    "scale": option("bench.scale", "--scale", help="paper (the paper's runs), small (a tenth, one GPU) or smoke (CPU plumbing check).", panel=PANEL_RUN),
    "seeds": option("bench.seeds", "--seeds", help="Training seeds per method (results give means, 95% intervals and paired differences).", panel=PANEL_RUN, min=1),
    "guidance_sweep": option("bench.guidance_sweep", "--guidance-sweep", help="W values, comma-separated: each method and seed picks its W by FID on a separate selection set.", panel=PANEL_SAMPLE),
    "selection_samples": option("bench.selection_samples", "--selection-samples", help="Samples per W on the selection set.", panel=PANEL_SAMPLE, min=1),
    "num_samples": option("bench.num_samples", "--num-samples", help="Reported samples per method and seed.", panel=PANEL_SAMPLE, min=1),
    "protocol": option("bench.protocol", "--protocol", help="scratch: train every method from scratch; finetune: fine-tune one base per arm.", panel=PANEL_METHOD),
    "arms": option("bench.finetune.arms", "--arms", help="Fine-tune arms, comma-separated: a method (every weight) or METHOD-lora (LoRA adapters); `base` is always reported.", panel=PANEL_METHOD),
    "base": option("bench.finetune.base", "--base", help="Fine-tune this base (any `finetune --base` form) instead of training one.", panel=PANEL_METHOD),
    "base_kind": option("bench.finetune.base_kind", "--base-kind", help="The base the bench trains: lt (DDPM on the long-tailed set) or uncond-balanced (unconditional, balanced set).", panel=PANEL_METHOD),
    "jobs": option("bench.launch.jobs", "--jobs", help="Trials at once on this machine, each its own process with --gpus-per-trial GPUs (or, on a CPU, its share of the cores); a fine-tune arm waits for its base.", panel=PANEL_LAUNCH, min=1),
    "gpus_per_trial": option("bench.launch.gpus_per_trial", "--gpus-per-trial", help="GPUs each trial gets (CUDA_VISIBLE_DEVICES locally, --gpus-per-node on SLURM).", panel=PANEL_LAUNCH, min=0),
    "cpus_per_trial": option("bench.launch.cpus_per_trial", "--cpus-per-trial", help="CPU cores (threads) each trial gets; 0: locally the cores shared between the jobs, on SLURM 8.", panel=PANEL_LAUNCH, min=0),
    "launcher": option("bench.launch.launcher", "--launcher", help="local (this machine) or slurm (one SLURM job per trial through submitit; requeued on pre-emption; see docs/cluster.md).", panel=PANEL_LAUNCH),
    "partition": option("bench.launch.partition", "--partition", help="SLURM partition (--launcher slurm).", panel=PANEL_LAUNCH),
    "time_min": option("bench.launch.time_min", "--time-min", help="SLURM time limit of each trial, minutes (a timed-out trial is requeued and resumes).", panel=PANEL_LAUNCH, min=1),
}

Recipe = Annotated[str | None, typer.Option("--recipe", help="TOML recipe: a file or a shipped name (`coral-ft config recipes`).", rich_help_panel=PANEL_RUN, autocompletion=completing(recipe_names))]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override any config field: section.key=value (repeatable).", rich_help_panel=PANEL_RUN)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", metavar="", help="Show progress bars.", rich_help_panel=PANEL_RUN)]
DryRun = Annotated[bool, typer.Option("--dry-run", metavar="", help="Print the resolved configuration (and plan) and stop.", rich_help_panel=PANEL_RUN)]


def _markers(annotation) -> list[Field]:
    return [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Field)]


def _bundles(annotation) -> list[Bundle]:
    return [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Bundle)]


@functools.cache
def recipe_values() -> dict[str, dict[str, Any]]:
    """dotted field -> {recipe name: value} for every field some shipped recipe sets (TOML only:
    no torch; read when a command that trains from a recipe is declared)."""

    def flat(table: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in table.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    from coral_ft.config import shipped_recipes

    values: dict[str, dict[str, Any]] = {}
    for name, path in sorted(shipped_recipes().items()):
        for key, value in flat({k: v for k, v in read_recipe(path).items() if k != "bench"}).items():
            values.setdefault(key, {})[name] = value
    return values


def _recipe_default(annotation):
    """The option with its help's default as it applies where a command starts from a data set's
    recipe: a field some shipped recipe sets reads "from the recipe; digits-lt: 800" (the value of
    the default data set's recipe, else the field's own default)."""
    fields = _markers(annotation)
    if not fields or fields[0].path == "data.dataset" or fields[0].path not in recipe_values():
        return annotation
    path, dataset = fields[0].path, DataConfig.dataset
    value = recipe_values()[path].get(dataset, _default_and_type(path)[0])
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
        field_of = {p.name: m.path for p in params for m in _markers(p.annotation)}
        bundle_of = {p.name: dict(m.values) for p in params for m in _bundles(p.annotation)}

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


