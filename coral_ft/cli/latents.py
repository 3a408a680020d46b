"""`coral-ft latents`: bottleneck features of real images -> entanglement scores and 2-D maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from coral_ft.cli.app import app
from coral_ft.errors import UserError


def parse_int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated integers, e.g. 100,500; got {text!r}") from None


def parse_plots(text: str) -> list[str]:
    names = [v.strip().lower() for v in text.split(",") if v.strip()]
    return [] if names == ["none"] else names


@app.command("latents")
def latents_command(
    models: list[Path] = typer.Option(..., "--model", help="Run directory or model folder (repeat to compare models)."),
    out: Path = typer.Option(..., "--out", help="Folder for latents.json, latents.txt, features.npz and the PNGs."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Data set of the images; default: the first model's."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the data set's files."),
    imbalance: Optional[float] = typer.Option(
        None, "--imbalance", help="rho of the training data (head/tail counts); default: the first run's, else 0.01."
    ),
    split: str = typer.Option("test", "--split", help="Balanced split whose images are embedded: test or train-full."),
    timesteps: str = typer.Option("100,500", "--timesteps", help="Noise levels, comma-separated, in 0..T-1."),
    per_class: int = typer.Option(100, "--per-class", help="Images per class (fewer when a class has fewer)."),
    condition: str = typer.Option(
        "true", "--condition", help="Label given to the U-Net: true (as in training) or null (keeps the label embedding out)."
    ),
    plot: str = typer.Option("tsne", "--plot", help="Maps to draw: tsne, umap (comma-separated) or none."),
    k: int = typer.Option(10, "--k", help="Neighbours for purity and tail-into-head overlap."),
    head_fraction: float = typer.Option(1 / 3, "--head-fraction", help="Share of classes counted as head (and as tail)."),
    metric: str = typer.Option("euclidean", "--metric", help="Distance for the scores: euclidean or cosine."),
    names: Optional[list[str]] = typer.Option(None, "--name", help="Panel name per --model (default: run folder names)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subsample, the noise, t-SNE/UMAP and the probe split."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda; default: cuda when available."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the tables."),
) -> None:
    """Pass real images, noised to chosen timesteps, through each U-Net; score and map its bottleneck features."""
    from coral_ft.latents.analyse import LatentsSettings, analyse_latents, default_device, run_defaults

    for path in models:
        if not path.exists():
            raise UserError(f"--model {path} does not exist")
    run_dataset, run_imbalance, run_image_size = run_defaults(models[0])
    dataset = dataset or run_dataset
    if dataset is None:
        raise UserError("--dataset is needed: the model does not record the data set it was trained on")
    settings = LatentsSettings(
        models=list(models),
        dataset=dataset,
        out=out,
        data_root=data_root,
        imbalance=imbalance if imbalance is not None else (run_imbalance or 0.01),
        image_size=run_image_size if dataset == run_dataset else None,
        split=split,
        timesteps=parse_int_list(timesteps, "--timesteps"),
        per_class=per_class,
        condition=condition,
        plots=parse_plots(plot),
        k=k,
        head_fraction=head_fraction,
        metric=metric,
        seed=seed,
        batch_size=batch_size,
        device=device or default_device(),
        names=names or None,
    )
    log = (lambda msg: typer.echo(msg, err=True)) if as_json else typer.echo
    report = analyse_latents(settings, log=log)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from coral_ft.latents.report import format_tables

    typer.echo(format_tables(report))
    typer.echo(f"report, features and {len(report['figures'])} figure(s) written to {out}")
