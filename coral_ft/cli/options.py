"""Options shared by the commands that train (`train`, `finetune`), and how they become a config.

Precedence, lowest first: dataclass defaults < recipe file < `--set key=value` < explicit flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from coral_ft.config import RunConfig, apply_overrides, config_from_dict, read_recipe

Dataset = Annotated[Optional[str], typer.Option("--dataset", help="Data set: cifar10-lt, cifar100-lt, digits-lt, imagefolder, ...")]
DataRoot = Annotated[Optional[str], typer.Option("--data-root", help="Folder holding the data set's files.")]
Imbalance = Annotated[Optional[float], typer.Option("--imbalance", help="rho of paper eq. 8 for -lt data sets (default 0.01).")]
Method = Annotated[Optional[str], typer.Option("--method", help="Objective: ddpm, coral, cbdm, t2h, ambient.")]
Out = Annotated[Path, typer.Option("--out", help="Run directory.")]
Recipe = Annotated[Optional[Path], typer.Option("--recipe", help="TOML recipe (see recipes/).")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override any field: section.key=value (repeatable).")]
Preset = Annotated[Optional[str], typer.Option("--preset", help="U-Net preset: micro, tiny, ddpm-cifar, ddpm-64.")]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="Optimiser steps.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Global batch per optimiser step.")]
GradAccum = Annotated[Optional[int], typer.Option("--grad-accum", help="Micro-batches per optimiser step.")]
LearningRate = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Seed of initialisation, data order and noise.")]
MixedPrecision = Annotated[Optional[str], typer.Option("--mixed-precision", help="no, bf16 or fp16.")]
LambdaMode = Annotated[
    Optional[str], typer.Option("--lambda-mode", help="CORAL time weight: per-anchor (paper) or batch-mean (official code).")
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def build_run_config(
    *,
    recipe: Path | None,
    sets: list[str] | None,
    out: Path | None = None,
    resume: bool = False,
    **flags: Any,
) -> RunConfig:
    """Recipe (or, when resuming without one, the run's saved config) + --set + flags."""
    from coral_ft.train.trainer import CONFIG_FILE

    if recipe is not None:
        raw = read_recipe(recipe)
    elif resume and out is not None and (out / CONFIG_FILE).is_file():
        raw = read_recipe(out / CONFIG_FILE)
    else:
        raw = {}
    apply_overrides(raw, sets or [])
    apply_overrides(raw, {FLAG_FIELDS[k]: v for k, v in flags.items() if v is not None})
    return config_from_dict(raw)


# CLI flag (python name) -> config field it sets.
FLAG_FIELDS = {
    "dataset": "data.dataset",
    "data_root": "data.root",
    "imbalance": "data.imbalance",
    "method": "objective.method",
    "preset": "model.preset",
    "max_steps": "train.max_steps",
    "batch_size": "train.batch_size",
    "grad_accum": "train.grad_accum",
    "lr": "train.lr",
    "seed": "train.seed",
    "mixed_precision": "train.mixed_precision",
    "lambda_mode": "objective.coral.lambda_mode",
    "base": "finetune.base",
    "lora": "finetune.lora",
    "rank": "finetune.rank",
    "lora_alpha": "finetune.alpha",
    "lora_targets": "finetune.targets",
}
