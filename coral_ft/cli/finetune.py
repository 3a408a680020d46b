"""`coral-ft finetune --base ...`: CORAL (or a baseline) on a pretrained U-Net, full or LoRA."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.errors import UserError

Base = Annotated[Optional[str], typer.Option("--base", help="Diffusers U-Net folder, coral-ft run directory or cached hub ID.")]
Lora = Annotated[Optional[bool], typer.Option("--lora/--full", help="Train LoRA adapters (+ class embedding, head) or every weight.")]
Rank = Annotated[Optional[int], typer.Option("--rank", help="LoRA rank r (default 8).")]
LoraAlpha = Annotated[Optional[float], typer.Option("--lora-alpha", help="LoRA alpha; the update is scaled by alpha / r.")]
LoraTargets = Annotated[
    Optional[list[str]],
    typer.Option("--lora-targets", help="Module-name suffixes to adapt, repeatable or comma-separated (default: attention, ResNet convs, time projections)."),
]


def split_targets(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


@app.command("finetune")
def finetune_command(
    out: o.Out,
    base: Base = None,
    lora: Lora = None,
    rank: Rank = None,
    lora_alpha: LoraAlpha = None,
    lora_targets: LoraTargets = None,
    dataset: o.Dataset = None,
    data_root: o.DataRoot = None,
    imbalance: o.Imbalance = None,
    method: o.Method = None,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    max_steps: o.MaxSteps = None,
    batch_size: o.BatchSize = None,
    grad_accum: o.GradAccum = None,
    lr: o.LearningRate = None,
    seed: o.Seed = None,
    mixed_precision: o.MixedPrecision = None,
    lambda_mode: o.LambdaMode = None,
    resume: o.Resume = False,
    progress: o.Progress = True,
) -> None:
    """Fine-tune a pretrained U-Net; writes the same run directory as `train` (model/ holds adapters under --lora).

    A UNet2DConditionModel base cross-attends to a fixed context: zeros by default, or
    `--set finetune.context=FILE.safetensors` (a 'context' tensor of shape (L, cross_attention_dim)).
    """
    from coral_ft.finetune.bases import resolve_base
    from coral_ft.finetune.source import FinetuneSource
    from coral_ft.train.trainer import train

    config = o.build_run_config(
        recipe=recipe, sets=sets, out=out, resume=resume,
        dataset=dataset, data_root=data_root, imbalance=imbalance, method=method,
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, seed=seed,
        mixed_precision=mixed_precision, lambda_mode=lambda_mode,
        base=base, lora=lora, rank=rank, lora_alpha=lora_alpha, lora_targets=split_targets(lora_targets),
    )  # fmt: skip
    if not config.finetune.base:
        raise UserError("pass --base (a diffusers U-Net folder, a coral-ft run directory or a cached hub ID)")
    resolve_base(config.finetune.base)  # a missing base fails now, before the data is read
    model_dir = train(config, out, resume=resume, source=FinetuneSource(config.finetune), progress=progress)
    typer.echo(f"model written to {model_dir}")
