"""Every reported metric in one table: its name, which computation yields it, the field of that
computation's result that holds it, whether higher is better, and how it is shown.

`evaluate` runs computations (`fid`, `is`, `prd`, `recall`, `kid`, `per-class-fid`); one
computation may report several values (PRD: F_8 and F_1/8; recall: precision and recall). The
CLI's formatting, the bench's tables and its paired comparisons read names, directions and
fields from here, so a metric is added in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from coral_ft.errors import UserError

COMPUTATIONS = ("fid", "is", "prd", "recall", "kid", "per-class-fid")


@dataclass(frozen=True)
class Metric:
    name: str  # table column and config name
    computation: str  # what `evaluate` computes to get it
    field: str  # key of the value in that computation's result
    higher_is_better: bool
    label: str  # how tables and the CLI show it
    digits: int = 3  # decimals shown


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("fid", "fid", "value", False, "FID", 2),
        Metric("is", "is", "mean", True, "IS", 2),
        Metric("f8", "prd", "f8_recall", True, "F8", 3),
        Metric("f1_8", "prd", "f1_8_precision", True, "F1/8", 3),
        Metric("precision", "recall", "precision", True, "precision", 3),
        Metric("recall", "recall", "recall", True, "recall", 3),
        Metric("kid", "kid", "value", False, "KID", 4),
        Metric("per-class-fid", "per-class-fid", "mean", False, "per-class FID (mean)", 2),
    )
}


def metric(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]


def computations_for(names) -> list[str]:
    """Computations (in COMPUTATIONS order) that produce the given metric or computation names."""
    wanted = set()
    for name in names:
        if name in COMPUTATIONS:
            wanted.add(name)
        else:
            wanted.add(metric(name).computation)
    return [c for c in COMPUTATIONS if c in wanted]


def metrics_of(computation: str) -> list[Metric]:
    return [m for m in METRICS.values() if m.computation == computation]


def value_of(result: dict, name: str) -> float | None:
    """A metric's value out of `evaluate`'s result; None where it was not computed or is unavailable."""
    m = metric(name)
    entry = result.get("metrics", {}).get(m.computation)
    if not entry or entry.get("available", True) is False:
        return None
    value = entry.get(m.field)
    return None if value is None else float(value)


def better(name: str, a: float, b: float) -> bool:
    """Is value a strictly better than b for this metric?"""
    return a < b if not metric(name).higher_is_better else a > b


def format_value(name: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{metric(name).digits}f}"
