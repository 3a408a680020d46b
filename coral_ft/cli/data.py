"""`coral-ft data ...`: look at data sets (and prepare the ones that cannot ship)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app

data_app = typer.Typer(help="Inspect and prepare data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def list_datasets() -> None:
    """The data sets coral-ft reads, and what each needs."""
    from coral_ft.data.registry import DATASETS

    for name, spec in sorted(DATASETS.items()):
        typer.echo(f"{name:18s} {spec.description}")


@data_app.command("stats")
@o.takes({"data_root": o.DATA["data_root"], "imbalance": o.DATA["imbalance"]})
def stats(
    dataset: Annotated[str, typer.Argument(help="Data set name, e.g. cifar10-lt, digits-lt (`coral-ft data list`).")],
    split: Annotated[str, typer.Option("--split", help="train, train-full or test.")] = "train",
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object {counts, total}.")] = False,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    *,
    flags: dict,
) -> None:
    """Per-class image counts and the total of a data set split (as its recipe, or --recipe, reads it)."""
    from coral_ft.data.registry import load_dataset

    config = o.resolve_config(recipe=recipe, sets=sets, flags={"data.dataset": dataset, **flags})
    d = config.data
    data = load_dataset(dataset, d.root, split, d.imbalance, d.image_size)
    counts = data.counts()
    if as_json:
        typer.echo(json.dumps({"counts": counts, "total": sum(counts)}))
        return
    width = max(len(n) for n in data.class_names)
    for i, (name, n) in enumerate(zip(data.class_names, counts)):
        typer.echo(f"{i:>4}  {name:<{width}}  {n:>7}")
    typer.echo(f"total {sum(counts)} images, {data.num_classes} classes, {data.channels}x{data.image_size}x{data.image_size}")


@data_app.command("prepare")
def prepare(
    dataset: Annotated[str, typer.Argument(help="celeba-5 or imagenet-lt.")],
    source: Annotated[str, typer.Option("--source", help="Folder with the downloaded images (see docs/benchmarks.md).")],
    data_root: Annotated[str, typer.Option("--data-root", help="Where the packed 64x64 files go (then pass it to train/bench).")],
    lists: Annotated[str | None, typer.Option("--lists", help="Split lists: OLTR ImageNet_LT_*.txt, or train.txt/test.txt for CelebA-5.")] = None,
    force: Annotated[bool, typer.Option("--force", metavar="", help="Rewrite packed files that already exist.")] = False,
) -> None:
    """Pack CelebA-5 or ImageNet-LT into 64x64 uint8 files, once."""
    from coral_ft.data import prepare as prep
    from coral_ft.errors import UserError

    if dataset == "celeba-5":
        written = prep.prepare_celeba5(source, data_root, lists, force)
    elif dataset == "imagenet-lt":
        if lists is None:
            raise UserError(f"imagenet-lt needs --lists: {prep.IMAGENET_HELP}")
        written = prep.prepare_imagenet_lt(source, lists, data_root, force)
    else:
        raise UserError(f"cannot prepare {dataset!r}: choose celeba-5 or imagenet-lt")
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo(f"{dataset} already prepared under {data_root} (--force to redo)")
