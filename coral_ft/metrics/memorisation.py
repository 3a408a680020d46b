"""Memorisation per class (paper Figure 11): is a generated sample closer to a training image of
its class than fresh real images of that class are?

In a feature space (the metric network's), each generated sample of class c gets the distance to
its nearest training image of class c; so does each held-out real image of class c. A sample
closer than the held-out images' 5th percentile (per class) counts as memorised. Copies of
training images score 1; samples drawn like the held-out images score about 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from coral_ft.metrics.precision_recall import squared_distances

PERCENTILE = 5.0


def nearest(queries: np.ndarray, keys: np.ndarray, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest key, Euclidean; (Q,) each."""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    k = torch.as_tensor(np.asarray(keys, dtype=np.float32))
    k_norms = (k * k).sum(1)
    dists, idx = [], []
    for start in range(0, len(q), block):
        best = squared_distances(q[start:start + block], k, k_norms).min(dim=1)  # over (b, K)
        dists.append(best.values.sqrt())
        idx.append(best.indices)
    if not dists:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


@dataclass
class Memorisation:
    threshold: dict[int, float]  # class -> 5th percentile of held-out nearest-training distances
    sample_distance: np.ndarray  # (N,) each sample's distance to its nearest training image of its class
    nearest_train: np.ndarray  # (N,) index into the training set of that image (-1 when the class has none)
    memorised: np.ndarray  # (N,) bool

    def share(self, labels: np.ndarray, classes) -> float | None:
        """Share of memorised samples among those of `classes`."""
        mask = np.isin(labels, list(classes)) & (self.nearest_train >= 0)
        return float(self.memorised[mask].mean()) if mask.any() else None


def memorisation(sample_feats, sample_labels, train_feats, train_labels, heldout_feats, heldout_labels,
                 percentile: float = PERCENTILE) -> Memorisation:
    """Per-class nearest-training-image distances of samples against held-out real images."""
    sample_labels, train_labels, heldout_labels = map(np.asarray, (sample_labels, train_labels, heldout_labels))
    n = len(sample_labels)
    dist = np.full(n, np.inf, dtype=np.float64)
    nearest_idx = np.full(n, -1, dtype=np.int64)
    memorised = np.zeros(n, dtype=bool)
    threshold = {}
    for c in np.unique(sample_labels):
        train_idx = np.flatnonzero(train_labels == c)
        held = heldout_feats[heldout_labels == c]
        if len(train_idx) == 0 or len(held) == 0:
            continue
        mine = np.flatnonzero(sample_labels == c)
        d, j = nearest(sample_feats[mine], train_feats[train_idx])
        dist[mine], nearest_idx[mine] = d, train_idx[j]
        threshold[int(c)] = float(np.percentile(nearest(held, train_feats[train_idx])[0], percentile))
        memorised[mine] = d < threshold[int(c)]
    return Memorisation(threshold, dist, nearest_idx, memorised)
