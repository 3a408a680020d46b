"""Training objectives, one module per method, chosen by name from `OBJECTIVES`.

Every module in this package except `base` is imported here, so dropping a new module with a
`@register`-ed `Objective` subclass into the folder is all it takes to add a method.
"""

import importlib
import pkgutil

from coral_ft.objectives.base import (
    OBJECTIVES,
    Objective,
    ObjectiveContext,
    TrainBatch,
    build_objective,
    drop_labels,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "OBJECTIVES",
    "Objective",
    "ObjectiveContext",
    "TrainBatch",
    "build_objective",
    "drop_labels",
    "register",
]
