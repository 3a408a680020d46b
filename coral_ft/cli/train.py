"""`coral-ft train --from-scratch ...`: train a class-conditional U-Net with CORAL or a baseline."""

from __future__ import annotations

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.errors import UserError


@app.command("train")
def train_command(
    out: o.Out,
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Start from a fresh preset U-Net (required)."),
    dataset: o.Dataset = None,
    data_root: o.DataRoot = None,
    imbalance: o.Imbalance = None,
    method: o.Method = None,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    preset: o.Preset = None,
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
    """Train from scratch; writes config.toml, checkpoints/, metrics.jsonl, samples/ and model/ to --out."""
    if not from_scratch:
        raise UserError("`coral-ft train` trains from scratch: pass --from-scratch (to start from a checkpoint, use `coral-ft finetune --base`)")
    from coral_ft.train.trainer import train

    config = o.build_run_config(
        recipe=recipe, sets=sets, out=out, resume=resume,
        dataset=dataset, data_root=data_root, imbalance=imbalance, method=method, preset=preset,
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, seed=seed,
        mixed_precision=mixed_precision, lambda_mode=lambda_mode,
    )  # fmt: skip
    model_dir = train(config, out, resume=resume, progress=progress)
    typer.echo(f"model written to {model_dir}")
