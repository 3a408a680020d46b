"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic kernel.

k(x, y) = (x.y / D + 1)^3, averaged over random subsets, the estimator clean-fid's
`kernel_distance` uses; here the subsets come from a seeded generator rather than NumPy's
global state, so a result is reproducible.
"""

from __future__ import annotations

import numpy as np

from coral_ft.errors import UserError

NUM_SUBSETS = 100
MAX_SUBSET_SIZE = 1000


def kid(features_a: np.ndarray, features_b: np.ndarray, *, num_subsets: int = NUM_SUBSETS,
        max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> tuple[float, int]:
    """KID between feature sets (N, D) and (M, D); returns (value, subset size used)."""
    m = min(len(features_a), len(features_b), max_subset_size)
    if m < 2:
        raise UserError(f"KID needs at least 2 images per set; got {len(features_a)} and {len(features_b)}")
    d = features_a.shape[1]
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = np.asarray(features_b[rng.choice(len(features_b), m, replace=False)], dtype=np.float64)
        y = np.asarray(features_a[rng.choice(len(features_a), m, replace=False)], dtype=np.float64)
        within = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3  # (m, m)
        across = (x @ y.T / d + 1) ** 3
        total += (within.sum() - np.diag(within).sum()) / (m - 1) - across.sum() * 2 / m
    return float(total / num_subsets / m), m


def compute(inputs) -> dict:
    """The registry's `kid` (coral_ft.metrics.registry)."""
    value, subset = kid(inputs.features, inputs.reference.features, seed=inputs.seed)
    return {"value": value, "subsets": NUM_SUBSETS, "subset_size": subset}
