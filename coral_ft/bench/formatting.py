"""How the bench writes a metric's value, and which way is better: shared by the report, the
verdict and the studies' pages."""

from __future__ import annotations

import math

from coral_ft.metrics.registry import METRICS


def higher_is_better(name: str) -> bool | None:
    """None: not a quality measure (W), never called better or worse. `name` may carry a group
    prefix (`tail:fid`)."""
    base = name.split(":")[-1]
    return METRICS[base].higher_is_better if base in METRICS else None


def digits(name: str) -> int:
    base = name.split(":")[-1]
    return METRICS[base].digits if base in METRICS else 2 if base == "W" else 3


def fmt(name: str, value, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{'+' if sign else ''}.{digits(name)}f}"
