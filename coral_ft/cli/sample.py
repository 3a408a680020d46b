"""`coral-ft sample`: N guided samples from a model to an .npz (resumable; `accelerate launch` splits it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from coral_ft.cli.app import app
from coral_ft.errors import UserError


@app.command("sample")
def sample_command(
    model: str = typer.Option(..., "--model", help="Run directory or exported model folder."),
    num: int = typer.Option(..., "--num", help="Number of samples N."),
    out: Path = typer.Option(..., "--out", help="Output .npz (images uint8 N x H x W x C, labels)."),
    guidance: Optional[float] = typer.Option(
        None, "--guidance", help="w of paper eq. 4 (0 = no guidance); default: the model's recorded value."
    ),
    sampler: str = typer.Option("ddpm", "--sampler", help="ddpm (1000-step ancestral) or ddim (--steps steps)."),
    steps: int = typer.Option(100, "--steps", help="DDIM steps."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM eta (0 = deterministic)."),
    labels: str = typer.Option("uniform", "--labels", help="uniform, balanced, or a class list like 0,3,7 or cat,dog."),
    batch_size: int = typer.Option(256, "--batch-size", help="Samples per forward batch (per process)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same samples."),
    png_dir: Optional[Path] = typer.Option(None, "--png-dir", help="Also write PNGs, one folder per class."),
    restart: bool = typer.Option(False, "--restart", help="Discard shards left by a run with other arguments."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per batch."),
) -> None:
    """Sample N images with classifier-free guidance; a re-run with the same arguments resumes."""
    from coral_ft.checkpoint.model import load_info, resolve_model_dir
    from coral_ft.sample.run import check_sampling_args, sample_to_npz

    if guidance is None:
        guidance = load_info(resolve_model_dir(model)).guidance
        if guidance is None:
            raise UserError("this model records no guidance weight: pass --guidance W (0 = no guidance)")
    check_sampling_args(out, num, guidance, sampler, steps, batch_size, eta)  # before accelerate starts

    from accelerate import Accelerator

    accelerator = Accelerator()
    path = sample_to_npz(
        model, out, num, guidance, sampler, steps, labels, batch_size, seed, png_dir, accelerator,
        eta=eta, restart=restart, progress=progress and accelerator.is_main_process,
    )  # fmt: skip
    if accelerator.is_main_process:
        typer.echo(f"{num} samples written to {path}")
