"""User-facing errors.

Anything raised as `UserError` is a mistake the user can fix (a wrong path, an invalid value).
The CLI prints its message as one line and exits non-zero; library users catch it like any
exception. Programming errors stay ordinary exceptions and keep their tracebacks.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line that says how to fix it."""


class ConfigError(UserError):
    """An invalid configuration value (recipe file, --set override or CLI flag)."""


class DataError(UserError):
    """Missing or malformed data on disk."""


class RunStopped(Exception):
    """A long run stopped on request (SIGTERM, Ctrl-C) after saving its state; run it again to resume."""
