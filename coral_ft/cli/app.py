"""The `coral-ft` command: a typer app whose commands are thin wrappers over library functions.

Each command lives in its own module and registers itself on `app` (or a sub-app). A
`UserError` anywhere becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from coral_ft.errors import UserError

app = typer.Typer(
    name="coral-ft",
    help="CORAL for long-tailed diffusion models: train, fine-tune, sample, evaluate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, imported for their registrations on `app`.
COMMAND_MODULES = ["data", "train", "finetune", "convert", "latents", "eval", "sample", "bench"]


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"coral_ft.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted: the last checkpoint written is intact", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
