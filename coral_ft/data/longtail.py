"""Long-tailed subsets of balanced data sets (paper Appendix A, eq. 8), and balanced subsamples.

Pure functions on label arrays, so they are testable without images.
"""

from __future__ import annotations

import math

import numpy as np


def longtail_counts(head_count: int, num_classes: int, imbalance: float) -> list[int]:
    """n_i = floor(N * rho^(i / (C - 1))) for i = 0..C-1 (paper eq. 8); class 0 is the head."""
    if num_classes == 1:
        return [head_count]
    # A tiny epsilon keeps exact powers (e.g. 5000 * 0.01 = 50) from flooring to 49.
    return [
        int(math.floor(head_count * imbalance ** (i / (num_classes - 1)) + 1e-9))
        for i in range(num_classes)
    ]


def select_longtail(labels: np.ndarray, counts: list[int], seed: int = 0) -> np.ndarray:
    """Indices of the long-tailed subset, chosen the way the peer implementations choose them.

    The legacy global NumPy RNG is seeded with `seed`; then, for each class in label order, that
    class's indices are shuffled and the first n_i kept. On the official CIFAR files this gives
    exactly the peers' subset. The global RNG state is restored afterwards.
    """
    labels = np.asarray(labels)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        chosen = []
        for cls, n in enumerate(counts):
            idx = np.where(labels == cls)[0]
            if len(idx) < n:
                raise ValueError(f"class {cls} has {len(idx)} images but the long tail needs {n}")
            np.random.shuffle(idx)
            chosen.append(idx[:n])
    finally:
        np.random.set_state(state)
    return np.concatenate(chosen)


def class_counts(labels, num_classes: int) -> list[int]:
    return np.bincount(np.asarray(labels), minlength=num_classes).tolist()


def select_per_class(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of min(per_class, available) images of each class, chosen with a seeded RNG.

    Sorted by class then by index, so the subsample is the same whatever order the data came in.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1; got {per_class}")
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        picked.append(np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)))
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
