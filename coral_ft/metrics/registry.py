"""Every reported metric in one table, and the computations that yield them.

A computation (`fid`, `is`, `prd`, `recall`, `kid`, `per-class-fid`) is a function of one feature
network's view of the samples and the reference (`coral_ft.metrics.inputs.MetricInputs`) that
returns a dict of values; `evaluate` runs the requested ones and, for the ones marked
`per_group`, runs them again on each group of classes. A metric names one value: which
computation yields it, under which key, whether higher is better, how it is shown, and whether
the bench reports it per group. The bench's own measurements (sample accuracy of the bench
classifier, the memorised share) are metrics too, with the place in a trial's eval.json where
the bench writes them. `evaluate`, the CLI's help and formatting, and the bench's tables and
paired comparisons all read this module, so a metric is one `Metric` (and, for a new
computation, one `Computation` and its function).

This module imports nothing heavy: the CLI reads it to build its help.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from coral_ft.errors import UserError

# How images reach a feature network's input size (coral_ft.metrics.features.resize): clean-fid's
# PIL bicubic, or the peers' bilinear `F.interpolate` on float pixels (the paper's FIDs).
RESIZES = ("clean", "legacy-pytorch")


@dataclass(frozen=True)
class Computation:
    name: str
    # compute(inputs: MetricInputs) -> dict; "module:function" under coral_ft.metrics is imported
    # when first used (keeps this module light), or the function itself.
    function: str | Callable
    min_images: Callable[[int, int], int]  # (k, number of classes) -> images each set needs
    network: str = "main"  # "main": the FID network's features; "recall": precision/recall's network
    reference_features: bool = True  # needs the reference's features, not only their mean and covariance
    samples_only: bool = False  # the minimum applies to the samples alone (IS has no reference)
    per_group: bool = False  # also computed on each group of classes (evaluate's `groups`)

    def run(self, inputs) -> dict:
        fn = self.function
        if isinstance(fn, str):
            module, name = fn.split(":")
            fn = getattr(importlib.import_module(f"coral_ft.metrics.{module}"), name)
        return fn(inputs)


@dataclass(frozen=True)
class Metric:
    name: str  # table column and config name
    computation: str | None  # what `evaluate` computes to get it; None: the bench adds it (`path`)
    field: str  # key of the value in that computation's result
    higher_is_better: bool
    label: str  # how tables and the CLI show it
    digits: int = 3  # decimals shown
    per_group: bool = False  # the bench reports it per group of classes
    path: tuple[str, ...] = ()  # bench metrics: where a trial's eval.json holds it ("{group}": a group's)
    group_path: tuple[str, ...] = ()
    # the bench reports it when its metric network is the small classifier (per-class FID on a
    # classifier's features is not the per-class FID users compare; the bench adds it separately)
    with_classifier: bool = True


COMPUTATIONS: dict[str, Computation] = {
    c.name: c
    for c in (
        Computation("fid", "fid:compute", lambda k, c: 2, reference_features=False, per_group=True),
        Computation("is", "inception_score:compute", lambda k, c: 10, samples_only=True),
        Computation("prd", "prd:compute", lambda k, c: 20 * c),  # 20 clusters per class
        Computation("kid", "kid:compute", lambda k, c: 2, per_group=True),
        Computation("per-class-fid", "per_class:compute", lambda k, c: 2),
        Computation("recall", "precision_recall:compute", lambda k, c: k + 1, network="recall", per_group=True),
    )
}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("fid", "fid", "value", False, "FID", 2, per_group=True),
        Metric("is", "is", "mean", True, "IS", 2),
        Metric("f8", "prd", "f8_recall", True, "F8", 3),
        Metric("f1_8", "prd", "f1_8_precision", True, "F1/8", 3),
        Metric("kid", "kid", "value", False, "KID", 4, per_group=True),
        Metric("precision", "recall", "precision", True, "precision", 3),
        Metric("recall", "recall", "recall", True, "recall", 3, per_group=True),
        Metric("per-class-fid", "per-class-fid", "mean", False, "per-class FID (mean)", 2, with_classifier=False),
        Metric("sample_accuracy", None, "mean", True, "sample accuracy", 3, per_group=True,
               path=("sample_accuracy", "mean"), group_path=("groups", "{group}", "sample_accuracy")),
        Metric("memorised", None, "overall", False, "memorised", 3, per_group=True,
               path=("memorisation", "overall"), group_path=("memorisation", "groups", "{group}")),
    )
}


def metric(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]


def evaluated() -> list[str]:
    """What `evaluate` can compute, by metric or computation name (the CLI's --metrics choices)."""
    return list(dict.fromkeys([*COMPUTATIONS, *(m.name for m in METRICS.values() if m.computation)]))


def computations_for(names) -> list[str]:
    """Computations (in COMPUTATIONS order) that produce the given metric or computation names."""
    wanted = set()
    for name in names:
        if name in COMPUTATIONS:
            wanted.add(name)
        elif metric(name).computation is not None:
            wanted.add(metric(name).computation)
    return [c for c in COMPUTATIONS if c in wanted]


def metrics_of(computation: str) -> list[Metric]:
    return [m for m in METRICS.values() if m.computation == computation]


def group_metrics() -> list[str]:
    """The metrics reported per group of classes, in table order."""
    return [m.name for m in METRICS.values() if m.per_group]


def _at(result: dict, path: tuple[str, ...], group: str | None):
    node = result
    for key in path:
        node = node.get(key.format(group=group)) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def value_of(result: dict, name: str, group: str | None = None) -> float | None:
    """A metric's value (for a group of classes, when given) out of `evaluate`'s result or a
    bench trial's eval.json; None where it was not computed or is unavailable."""
    m = metric(name)
    if group is not None:
        value = _at(result, m.group_path or ("groups", "{group}", m.name), group)
    elif m.computation is None:
        value = _at(result, m.path, None)
    else:
        entry = result.get("metrics", {}).get(m.computation)
        if not entry or entry.get("available", True) is False:
            return None
        value = entry.get(m.field)
    return None if value is None else float(value)


def higher_is_better(name: str) -> bool | None:
    """None: not a quality measure (W), never called better or worse. `name` may carry a group
    prefix (`tail:fid`)."""
    base = name.split(":")[-1]
    return METRICS[base].higher_is_better if base in METRICS else None


def in_prose(name: str) -> str:
    """A metric's name inside a sentence: "is" alone reads as the verb, so it is written IS."""
    return "IS" if name == "is" else name


def format_value(name: str, value, sign: bool = False) -> str:
    """A metric's value as every table writes it (`name` may carry a group prefix; W has 2 digits)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    base = name.split(":")[-1]
    digits = METRICS[base].digits if base in METRICS else 2 if base == "W" else 3
    return f"{value:{'+' if sign else ''}.{digits}f}"
