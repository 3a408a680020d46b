"""`coral-ft sample`: N guided samples from a model to an .npz (resumable; `accelerate launch` splits it).

The model's own settings come first: a run samples as its saved `[sample]` section says (an
exported folder as recorded in its coral_ft.json); `--recipe`, `--set` and flags override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.config import config_from_dict
from coral_ft.devices import use_runtime
from coral_ft.errors import UserError


def model_config(model: str, recipe, sets, flags):
    """The sampling config of a model: its run's config.toml, else what its folder records."""
    from coral_ft.checkpoint.layout import RunDir
    from coral_ft.checkpoint.model import load_info, resolve_model_dir

    model_dir = resolve_model_dir(model)
    run = RunDir.of_model(model_dir)
    base = None if run is not None else {"sample": dict(load_info(model_dir).extra.get("sample", {}))}
    raw = o.layered(recipe=recipe, run=run.config if run else None, base=base, sets=sets, flags=flags)
    if "guidance" not in raw.get("sample", {}):  # no layer, the model's own records included, set W
        raise UserError(f"{model_dir} records no guidance weight: pass --guidance W (0 = no guidance)")
    return config_from_dict(raw)


@app.command("sample")
@o.takes(o.SAMPLING, o.DEVICE)
def sample_command(
    model: Annotated[str, typer.Option("--model", help="Run directory or exported model folder.")],
    num: Annotated[int, typer.Option("--num", min=1, help="Number of samples N.")],
    out: Annotated[Path, typer.Option("--out", help="Output .npz (images uint8 N x H x W x C, labels, settings).")],
    png_dir: Annotated[Path | None, typer.Option("--png-dir", help="Also write PNGs, one folder per class.")] = None,
    restart: Annotated[bool, typer.Option("--restart", metavar="", help="Discard shards left by a run with other settings.")] = False,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    progress: o.Progress = True,
    dry_run: o.DryRun = False,
    *,
    flags: dict,
) -> None:
    """Sample N images with classifier-free guidance; a re-run with the same settings resumes."""
    from coral_ft.sample.run import check_output

    config = model_config(model, recipe, sets, flags)
    if dry_run:
        typer.echo(config.to_toml())
        return
    check_output(out, num)  # before accelerate starts
    from accelerate import Accelerator

    from coral_ft.sample.run import sample_to_npz

    accelerator = Accelerator(cpu=use_runtime(config.runtime) == "cpu")
    path = sample_to_npz(model, out, num, config.sample, png_dir=png_dir, accelerator=accelerator, restart=restart,
                         progress=progress and accelerator.is_main_process)
    if accelerator.is_main_process:
        s = config.sample
        typer.echo(f"{num} samples written to {path} ({s.sampler}, W={s.guidance}, settings recorded in the file)")
