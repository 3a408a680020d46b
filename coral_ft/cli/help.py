"""Two touches to typer's help, so that it reads like the rest of the CLI's output.

- typer's rich help pads its usage line with a blank line above it as well as below: help output
  would start with an empty line, where every other output starts with what it says.
- typer 0.29 writes a required argument as `{run}` in the usage line, which reads as a set or as
  a placeholder to type with its braces; usage lines say `RUN` (and `[RUN]` when optional), as
  click and POSIX usage do.

Both wrap typer internals and leave them as they are where a typer version lacks them.
"""

from __future__ import annotations

import functools

from typer.core import TyperArgument, TyperCommand, TyperGroup

USAGE_PADDING = (0, 1, 1, 1)  # (top, right, bottom, left): typer's 1 all round, less the line above


def _usage_first(format_help):
    @functools.wraps(format_help)
    def wrapped(self, ctx, formatter):
        if getattr(self, "rich_markup_mode", None) is None:
            return format_help(self, ctx, formatter)
        from typer import rich_utils

        padding = rich_utils.Padding  # the usage line is the one rendered with a bare 1

        def usage_padding(renderable, pad=(0, 0, 0, 0), **kwargs):
            return padding(renderable, USAGE_PADDING if pad == 1 else pad, **kwargs)

        rich_utils.Padding = usage_padding
        try:
            return format_help(self, ctx, formatter)
        finally:
            rich_utils.Padding = padding

    return wrapped


def _usage_name(self) -> str:
    name = (self.metavar or self.name or "").upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def install() -> None:
    for cls in (TyperCommand, TyperGroup):
        if not getattr(cls.format_help, "_coral_ft", False):
            cls.format_help = _usage_first(cls.format_help)
            cls.format_help._coral_ft = True
    if hasattr(TyperArgument, "_usage_display_name"):
        TyperArgument._usage_display_name = _usage_name
