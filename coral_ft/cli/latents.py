"""`coral-ft latents`: bottleneck features of real images -> entanglement scores and 2-D maps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.devices import use_runtime
from coral_ft.errors import UserError


def latents_config(model: Path, recipe, sets, flags):
    """The first model's training config (its data set, rho, image size) + --recipe / --set / flags."""
    from coral_ft.checkpoint.layout import RunDir
    from coral_ft.checkpoint.model import load_info, resolve_model_dir
    from coral_ft.data.registry import DATASETS

    model_dir = resolve_model_dir(model)
    run = RunDir.of_model(model_dir)
    base = None
    if run is None:  # an exported folder records its data set and rho; its config.json, the image size
        info = load_info(model_dir)
        data = {"dataset": info.dataset} if info.dataset else {}
        if info.extra.get("imbalance") is not None:
            data["imbalance"] = info.extra["imbalance"]
        if flags.get("data.dataset", info.dataset) == info.dataset and DATASETS.get(info.dataset) and DATASETS[info.dataset].resizes:
            data["image_size"] = json.loads((model_dir / "config.json").read_text())["sample_size"]
        base = {"data": data}
        if "data.dataset" not in flags and not info.dataset and recipe is None:
            raise UserError("--dataset is needed: the model does not record the data set it was trained on")
    return o.resolve_config(recipe=recipe, run=run.config if run else None, base=base, sets=sets, flags=flags)


@app.command("latents")
@o.takes(o.DATA, o.LATENTS, o.DEVICE)
def latents_command(
    models: Annotated[list[Path], typer.Option("--model", help="Run directory or model folder (repeat to compare models).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for latents.json, latents.txt, features.npz and the PNGs.")],
    names: Annotated[list[str] | None, typer.Option("--name", help="Panel name per --model (default: run folder names).")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print the JSON report instead of the tables.")] = False,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    progress: o.Progress = True,
    *,
    flags: dict,
) -> None:
    """Pass real images, noised to chosen timesteps, through each U-Net; score and map its bottleneck features."""
    from coral_ft.latents.analyse import analyse_latents

    for path in models:
        if not path.exists():
            raise UserError(f"--model {path} does not exist")
    config = latents_config(models[0], recipe, sets, flags)
    log = (lambda msg: typer.echo(msg, err=True)) if as_json else typer.echo
    report = analyse_latents(list(models), out, config, names=names or None, device=use_runtime(config.runtime),
                             log=log, progress=progress)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from coral_ft.latents.report import format_tables

    typer.echo(format_tables(report))
    typer.echo(f"report, features and {len(report['figures'])} figure(s) written to {out}")
