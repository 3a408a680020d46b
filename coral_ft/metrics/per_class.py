"""Per-class FID (paper Figure 3): each class's samples against that class's real images."""

from __future__ import annotations

import numpy as np

from coral_ft.errors import UserError
from coral_ft.metrics.fid import MIN_SAMPLES, fid_from_stats, gaussian_stats

ClassStats = dict[int, tuple[np.ndarray, np.ndarray]]  # class -> (mu (D,), sigma (D, D))


def class_stats(features: np.ndarray, labels: np.ndarray) -> ClassStats:
    """Gaussian statistics of every class present in labels (N,)."""
    return {int(c): gaussian_stats(features[labels == c]) for c in np.unique(labels)}


def per_class_fid(sample_feats: np.ndarray, sample_labels: np.ndarray, ref_stats: ClassStats) -> dict[int, float]:
    """FID per reference class; every reference class needs MIN_SAMPLES samples or more."""
    counts = np.bincount(sample_labels, minlength=max(ref_stats) + 1)
    short = [c for c in ref_stats if counts[c] < MIN_SAMPLES]
    if short:
        raise UserError(
            f"per-class FID needs at least {MIN_SAMPLES} samples of every class; classes {short} have fewer "
            "(sample with equal counts per class)"
        )
    stray = sorted(set(np.unique(sample_labels).tolist()) - set(ref_stats))
    if stray:
        raise UserError(f"samples carry labels {stray} that the reference does not have")
    return {c: fid_from_stats(*gaussian_stats(sample_feats[sample_labels == c]), *ref_stats[c]) for c in sorted(ref_stats)}
