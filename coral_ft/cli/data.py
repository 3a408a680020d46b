"""`coral-ft data ...`: look at data sets (and prepare the ones that cannot ship)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from coral_ft.cli.app import app

data_app = typer.Typer(help="Inspect and prepare data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("stats")
def stats(
    dataset: str = typer.Argument(..., help="Data set name, e.g. cifar10-lt, digits-lt."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the data set's files."),
    imbalance: float = typer.Option(0.01, "--imbalance", help="rho of paper eq. 8 for -lt data sets."),
    split: str = typer.Option("train", "--split", help="train, train-full or test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {counts, total}."),
) -> None:
    """Per-class image counts and the total of a data set split."""
    from coral_ft.data.registry import load_dataset

    data = load_dataset(dataset, data_root, split, imbalance)
    counts = data.counts()
    if as_json:
        typer.echo(json.dumps({"counts": counts, "total": sum(counts)}))
        return
    width = max(len(n) for n in data.class_names)
    for i, (name, n) in enumerate(zip(data.class_names, counts)):
        typer.echo(f"{i:>4}  {name:<{width}}  {n:>7}")
    typer.echo(f"total {sum(counts)} images, {data.num_classes} classes, {data.channels}x{data.image_size}x{data.image_size}")
