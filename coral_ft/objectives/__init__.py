"""Training objectives, one module per method, chosen by name from `OBJECTIVES`.

A method is the module of its name in this package with a `@register`-ed `Objective` subclass:
dropping a new module into the folder is all it takes to add one. `method_names()` lists them
without importing torch (the CLI's help and completion); the other names load every method.
"""

import importlib
import pkgutil

_BASE_NAMES = ("OBJECTIVES", "Objective", "ObjectiveContext", "TrainBatch", "build_objective", "drop_labels", "register")


def method_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_"))


def __getattr__(name: str):
    if name not in _BASE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module(f"{__name__}.base")
    for method in method_names():
        importlib.import_module(f"{__name__}.{method}")
    return getattr(base, name)


__all__ = ["method_names", *_BASE_NAMES]
