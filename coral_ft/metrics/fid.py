"""Frechet Inception Distance on feature arrays (Heusel et al. 2017), as clean-fid computes it.

FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to two
feature sets. The Frechet distance itself is clean-fid's `frechet_distance`.
"""

from __future__ import annotations

import numpy as np
from cleanfid.fid import frechet_distance

from coral_ft.errors import UserError

MIN_SAMPLES = 2  # a covariance needs at least two points


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64 as clean-fid does."""
    if len(features) < MIN_SAMPLES:
        raise UserError(f"FID needs at least {MIN_SAMPLES} images per set; got {len(features)}")
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    return float(frechet_distance(mu1, sigma1, mu2, sigma2))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D)."""
    return fid_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))
