"""Intervals over training seeds: the mean with a Student-t 95% confidence interval, and the
paired difference of two methods trained with the same seed indices (same data subset, same
reference, same sampling seeds), whose interval says whether a difference is more than noise.

With one seed there is no spread to estimate: the interval is None, never a made-up width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    ci95: tuple[float, float] | None  # None with fewer than two values
    values: list[float]

    @property
    def half_width(self) -> float | None:
        return None if self.ci95 is None else (self.ci95[1] - self.ci95[0]) / 2

    def excludes_zero(self) -> bool:
        return self.ci95 is not None and (self.ci95[0] > 0 or self.ci95[1] < 0)


def t_interval(values, level: float = LEVEL) -> Interval:
    """mean +- t_{n-1, (1+level)/2} * s / sqrt(n) of the finite values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return Interval(float("nan"), None, [])
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, None, x.tolist())
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(mean, (mean - half, mean + half), x.tolist())


def paired_difference(values, baseline, level: float = LEVEL) -> Interval:
    """Interval of (values[i] - baseline[i]) over the seed indices both have."""
    pairs = [a - b for a, b in zip(values, baseline)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    return t_interval(pairs, level)
