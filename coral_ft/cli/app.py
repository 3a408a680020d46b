"""The `coral-ft` command: a typer app whose commands are thin wrappers over library functions.

Each command lives in its own module and registers itself on `app` (or a sub-app). Usage
mistakes (an unknown option, a missing value, a non-number) are reported by typer itself, one
short block and exit code 2, whatever click version typer bundles. A `UserError` anywhere
becomes one line on stderr and exit code 2, never a traceback; a training run stopped by SIGTERM
or Ctrl-C exits 143 / 130 after writing its checkpoint.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coral_ft import __version__
from coral_ft.errors import RunStopped, UserError

app = typer.Typer(
    name="coral-ft",
    help="CORAL for long-tailed diffusion models: train, fine-tune, sample, evaluate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode="rich",
)

# Command modules, imported for their registrations on `app`.
COMMAND_MODULES = ["config", "data", "train", "convert", "sample", "eval", "latents", "bench", "env"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coral-ft {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """CORAL for long-tailed diffusion models: train, fine-tune, sample, evaluate, benchmark."""


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"coral_ft.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        app(args=argv, prog_name="coral-ft")  # standalone: typer reports usage errors and exits 2
    except SystemExit as exc:
        if exc.code not in (0, None):  # success returns normally, for callers of main() too
            raise
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except RunStopped as exc:
        typer.secho(str(exc), err=True)
        sys.exit(143)
    except KeyboardInterrupt:
        typer.secho("interrupted: the last checkpoint written is intact", err=True)
        sys.exit(130)
