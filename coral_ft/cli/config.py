"""`coral-ft config show` and `coral-ft config recipes`: see resolved settings without starting anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.errors import UserError

config_app = typer.Typer(help="Show resolved configurations and the shipped recipes.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@o.takes({"official_code": o.METHOD["official_code"]})
def show(
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    run: Annotated[Path | None, typer.Option("--run", help="A run directory: its saved config.toml is the base.")] = None,
    section: Annotated[str | None, typer.Option("--section", help="Print one section only, e.g. sample.")] = None,
    *,
    flags: dict,
) -> None:
    """Print the configuration a command would use: defaults < recipe or run < --set, as TOML."""
    from coral_ft.checkpoint.layout import RunDir
    from coral_ft.config import SECTIONS

    if recipe is not None and run is not None:
        raise UserError("give --recipe or --run, not both")
    saved = None
    if run is not None:
        saved = RunDir(run).config
        if not saved.is_file():
            raise UserError(f"no run at {run}: {saved} is missing")
    config = o.resolve_config(recipe=recipe, run=saved, sets=sets, flags=flags)
    if section is None:
        typer.echo(config.to_toml())
        return
    if section not in SECTIONS:
        raise UserError(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
    import tomli_w

    typer.echo(tomli_w.dumps({section: config.to_dict()[section]}))


@config_app.command("recipes")
def recipes() -> None:
    """List the shipped recipes (usable as --recipe NAME or `coral-ft bench NAME` from any folder)."""
    from coral_ft.config import read_recipe, shipped_recipes

    for name, path in sorted(shipped_recipes().items()):
        title = read_recipe(path).get("bench", {}).get("title", "")
        typer.echo(f"{name:20s} {title}")
