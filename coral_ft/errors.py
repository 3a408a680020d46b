"""User-facing errors, and the checks that raise them.

Anything raised as `UserError` is a mistake the user can fix (a wrong path, an invalid value).
The CLI prints its message as one line and exits non-zero; library users catch it like any
exception. Programming errors stay ordinary exceptions and keep their tracebacks.
"""

from pathlib import Path


class UserError(ValueError):
    """A problem with the user's input, reported as one line that says how to fix it (a bad value:
    a ValueError, so library users catch it as the diffusers and torch idiom has them do)."""


class ConfigError(UserError):
    """An invalid configuration value (recipe file, --set override or CLI flag)."""


class DataError(UserError):
    """Missing or malformed data on disk."""


class RunStopped(Exception):
    """A long run stopped on request (SIGTERM, Ctrl-C) after saving its state; run it again to resume."""


# Checks that raise a ConfigError naming the setting: shared by the config sections and every
# objective's settings, so a bad value reads the same wherever it is set.
def check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def check_choice(name: str, value, choices) -> None:
    check(value in choices, f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_positive(section: str, obj, *names: str) -> None:
    for name in names:
        check(getattr(obj, name) > 0, f"{section}.{name} must be positive; got {getattr(obj, name)}")


def check_non_negative(section: str, obj, *names: str) -> None:
    for name in names:
        check(getattr(obj, name) >= 0, f"{section}.{name} must be >= 0; got {getattr(obj, name)}")


def check_new_folder(out: Path) -> None:
    """An output folder to write: new or empty, so nothing of the user's is mixed in or overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; choose a new --out")
