"""`coral-ft convert` (foreign checkpoints -> diffusers) and `coral-ft export` (a run -> a plain folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli.app import app
from coral_ft.errors import UserError, check_new_folder

CONVERTERS = ("ddpm-cifar",)  # the peers' checkpoint layout (CORAL, CBDM, T2H code bases)


@app.command("convert")
def convert_command(
    checkpoint: Annotated[Path, typer.Argument(help="The peers' ckpt_{step}.pt.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write: OUT/model (diffusers) and OUT/head (CORAL's mean_proj).")],
    source_format: Annotated[str, typer.Option("--from", help="Checkpoint layout: ddpm-cifar (the peers' code).")] = "ddpm-cifar",
    ema: Annotated[bool, typer.Option("--ema/--raw", metavar="", help="Convert the EMA weights or the raw training weights.")] = True,
    sample_size: Annotated[int | None, typer.Option("--sample-size", min=8, help="Image size; default: read from the checkpoint's fixed_x_T.")] = None,
) -> None:
    """Convert a peers' checkpoint into a diffusers UNet2DModel folder (`finetune --base` also takes the .pt directly)."""
    if source_format not in CONVERTERS:
        raise UserError(f"--from must be one of {', '.join(CONVERTERS)}; got {source_format!r}")
    check_new_folder(out)
    from coral_ft.finetune.export import write_converted
    from coral_ft.models.convert_peer import convert_peer_checkpoint

    unet, head, layout = convert_peer_checkpoint(checkpoint, "ema" if ema else "raw", sample_size)
    model_dir = write_converted(out, unet, head, layout, str(checkpoint))
    classes = f"{layout.num_classes} classes" if layout.num_classes else "unconditional"
    typer.echo(f"model written to {model_dir} ({classes}{', with the CORAL head' if head is not None else ''})")


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="A run directory or model folder.", metavar="RUN")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write.")],
    merge: Annotated[bool, typer.Option("--merge", metavar="", help="Fold LoRA adapters into the weights: a plain diffusers folder.")] = False,
    pipeline: Annotated[bool, typer.Option("--pipeline", metavar="", help="Write a CoralPipeline folder (model_index.json, unet/, scheduler/, pipeline.py) for DiffusionPipeline.from_pretrained.")] = False,
    push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", help="Also upload the folder to this Hugging Face repo (owner/name).")] = None,
) -> None:
    """Write a run's model as a diffusers folder with a model card (LoRA runs: adapters only unless --merge)."""
    check_new_folder(out)
    from coral_ft.finetune.export import export_model, push_folder

    folder = export_model(run, out, merge, pipeline)
    typer.echo(f"model written to {folder}")
    if push_to_hub:
        typer.echo(f"uploaded to {push_folder(folder, push_to_hub)}")
