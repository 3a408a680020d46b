"""Evaluation metrics: pure functions on feature arrays (one module each: fid, kid, prd, ...), the
feature networks in `features/`, the table of reported metrics in `registry`, and `evaluate` /
`make_reference` (coral_ft.metrics.evaluation) tying them to samples files and reference sets.

`evaluate`, `make_reference` and `METRICS` are imported when first used: the CLI reads the light
`registry` without loading the networks.
"""

import importlib

_HOMES = {"evaluate": "evaluation", "make_reference": "evaluation", "METRICS": "registry"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
