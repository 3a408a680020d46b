"""Evaluation metrics: pure functions on feature arrays, the feature networks in `features/`,
the table of reported metrics in `registry`, and `evaluate` / `make_reference` tying them to
samples files and reference sets.

Names are imported when first used: the CLI reads the light `registry` without the networks.
"""

import importlib

_HOMES = {
    "METRICS": "registry", "evaluate": "evaluate", "make_reference": "evaluate", "fid": "fid",
    "fid_from_stats": "fid", "gaussian_stats": "fid", "inception_score": "inception_score", "kid": "kid",
    "per_class_fid": "per_class", "prd": "prd", "precision_recall": "precision_recall",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
