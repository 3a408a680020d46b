"""`coral-ft convert` (foreign checkpoints -> diffusers) and `coral-ft export` (a run -> a plain folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from coral_ft.cli.app import app
from coral_ft.errors import UserError

CONVERTERS = ("ddpm-cifar",)  # the peers' checkpoint layout (CORAL, CBDM, T2H code bases)


@app.command("convert")
def convert_command(
    checkpoint: Path = typer.Argument(..., help="The peers' ckpt_{step}.pt."),
    out: Path = typer.Option(..., "--out", help="Folder to write: OUT/model (diffusers) and OUT/head (CORAL's mean_proj)."),
    source_format: str = typer.Option("ddpm-cifar", "--from", help="Checkpoint layout: ddpm-cifar (the peers' code)."),
    ema: bool = typer.Option(True, "--ema/--raw", help="Convert the EMA weights (default) or the raw training weights."),
    sample_size: Optional[int] = typer.Option(None, "--sample-size", help="Image size; default: read from the checkpoint's fixed_x_T."),
) -> None:
    """Convert a peers' checkpoint into a diffusers UNet2DModel folder usable as --base or for sampling."""
    if source_format not in CONVERTERS:
        raise UserError(f"--from must be one of {', '.join(CONVERTERS)}; got {source_format!r}")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new --out")
    from coral_ft.models.convert_peer import convert_peer_checkpoint, write_converted

    unet, head, layout = convert_peer_checkpoint(checkpoint, "ema" if ema else "raw", sample_size)
    model_dir = write_converted(out, unet, head, layout, str(checkpoint))
    classes = f"{layout.num_classes} classes" if layout.num_classes else "unconditional"
    typer.echo(f"model written to {model_dir} ({classes}{', with the CORAL head' if head is not None else ''})")


@app.command("export")
def export_command(
    run: Path = typer.Argument(..., help="A run directory or model folder."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    merge: bool = typer.Option(False, "--merge", help="Fold LoRA adapters into the weights: a plain diffusers folder."),
) -> None:
    """Write a run's model as a diffusers folder (LoRA runs: adapters only unless --merge)."""
    from coral_ft.finetune.export import export_model

    typer.echo(f"model written to {export_model(run, out, merge)}")
