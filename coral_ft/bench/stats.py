"""Intervals over training seeds: the mean with a Student-t 95% confidence interval, and the
paired difference of two methods trained with the same seed indices (same data subset, same
reference, same sampling seeds), whose interval says whether a difference is more than noise.

With one seed there is no spread to estimate: the interval is None, never a made-up width. With
values that agree exactly (every seed's difference the same) the interval has zero width: that
is no evidence either (the seeds did not vary what the difference depends on), so it is flagged
and never said to exclude 0.

For a verdict over many comparisons (arms x metrics) the p-values of the paired t-tests are
Holm-adjusted (`holm`), and `detectable_difference` says how small a difference the seeds could
have found at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.80  # of the smallest detectable difference


@dataclass(frozen=True)
class Interval:
    mean: float
    ci95: tuple[float, float] | None  # None with fewer than two values
    values: list[float]

    @property
    def agree_exactly(self) -> bool:
        """Two or more values, all the same: a zero-width interval that says nothing."""
        return len(self.values) > 1 and max(self.values) - min(self.values) <= 1e-12 * max(1.0, abs(self.mean))

    def excludes_zero(self) -> bool:
        return self.ci95 is not None and not self.agree_exactly and (self.ci95[0] > 0 or self.ci95[1] < 0)

    @property
    def p_value(self) -> float | None:
        """Two-sided one-sample t-test of mean 0 (None without a spread to test against)."""
        if self.ci95 is None or self.agree_exactly:
            return None
        return float(stats.ttest_1samp(self.values, 0.0).pvalue)


def t_interval(values) -> Interval:
    """mean +- t_{n-1, 0.975} * s / sqrt(n) of the finite values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return Interval(float("nan"), None, [])
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, None, x.tolist())
    half = half_width(x.std(ddof=1), len(x))
    return Interval(mean, (mean - half, mean + half), x.tolist())


def half_width(sd: float, n: int, level: float = LEVEL) -> float:
    """t_{n-1, (1+level)/2} * sd / sqrt(n): the half-width of the interval of a mean of n values."""
    return float(stats.t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n))


def paired_difference(values, baseline) -> Interval:
    """Interval of (values[i] - baseline[i]) over the seed indices both have."""
    pairs = [a - b for a, b in zip(values, baseline)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    return t_interval(pairs)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pooled_sd(samples: list[list[float]]) -> tuple[float, int] | None:
    """The pooled standard deviation of several samples (each about its own mean) and its degrees
    of freedom; None with no sample of two or more values."""
    ss = sum(float(np.sum((np.asarray(s) - np.mean(s)) ** 2)) for s in samples if len(s) > 1)
    dof = sum(len(s) - 1 for s in samples if len(s) > 1)
    return (math.sqrt(ss / dof), dof) if dof else None


def detectable_difference(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """The smallest true paired difference a two-sided t-test at level `alpha` over n seeds finds
    with probability `power`, for differences of standard deviation `sd` (normal approximation to
    the non-central t: (t_{1-alpha/2} + t_{power}) * sd / sqrt(n), n - 1 degrees of freedom)."""
    if n < 2:
        return float("inf")
    dof = n - 1
    return float((stats.t.ppf(1 - alpha / 2, dof) + stats.t.ppf(power, dof)) * sd / math.sqrt(n))
