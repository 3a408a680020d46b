"""The `coral-ft` command: a typer app whose commands are thin wrappers over library functions.

Each command lives in its own module and registers itself on `app` (or a sub-app). Usage
mistakes (an unknown option, a missing value, a non-number, a value out of range) and a
`UserError` anywhere each become one line on stderr and exit code 2, never a traceback; a training run stopped by SIGTERM
or Ctrl-C exits 143 after writing its checkpoint (a second Ctrl-C interrupts at once: 130).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coral_ft import __version__
from coral_ft.cli import help as _help
from coral_ft.errors import RunStopped, UserError

_help.install()  # help that starts with its usage line, arguments written RUN

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
    version: Annotated[bool | None, typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """CORAL for long-tailed diffusion models: train, fine-tune, sample, evaluate, benchmark."""


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"coral_ft.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        code = app(args=argv, prog_name="coral-ft", standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):  # success returns normally, for callers of main() too
            raise
        return
    except typer.TyperException as exc:  # a usage mistake (unknown option, bad or missing value): one line
        ctx, message = getattr(exc, "ctx", None), exc.format_message()
        if message:  # (a bare `coral-ft` has just printed the help)
            where = ctx.command_path if ctx is not None else "coral-ft"
            typer.secho(f"error: {message} (see `{where} --help`)", err=True, fg=typer.colors.RED)
        sys.exit(getattr(exc, "exit_code", 2))
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except RunStopped as exc:
        typer.secho(str(exc), err=True)
        sys.exit(143)
    except KeyboardInterrupt:  # typer turns one into exit code 130 (below); this catches any it lets through
        code = 130
    if code == 130:
        typer.secho("interrupted: the last checkpoint written is intact", err=True)
    if isinstance(code, int) and code:
        sys.exit(code)
