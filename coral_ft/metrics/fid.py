"""Frechet Inception Distance on feature arrays (Heusel et al. 2017), as clean-fid computes it.

FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to two
feature sets, computed as clean-fid's `frechet_distance` computes it. It is written out here
because clean-fid 0.1.35 calls `scipy.linalg.sqrtm(..., disp=False)`, an argument newer SciPy
releases no longer accept (seen on a GPU machine's SciPy); the tests hold the two to 1e-6.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from coral_ft.errors import UserError

MIN_SAMPLES = 2  # a covariance needs at least two points


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64 as clean-fid does."""
    if len(features) < MIN_SAMPLES:
        raise UserError(f"FID needs at least {MIN_SAMPLES} images per set; got {len(features)}")
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    with warnings.catch_warnings():  # few samples make S_1 S_2 singular; the offset below handles it
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    # Numerical error can leave a small imaginary part: the real part is the root.
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D): through (D, D) covariances, or, when a set
    has fewer points than dimensions, through their (N, M) cross products (`fid_low_rank`)."""
    if min(len(features_a), len(features_b)) < np.shape(features_a)[1]:
        return fid_low_rank(features_a, features_b)
    return fid_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def fid_low_rank(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The same FID without a D x D matrix: with A, B the centred features, S_a = A^T A / (N - 1)
    and S_b = B^T B / (M - 1), the non-zero eigenvalues of S_a S_b are the squared singular values
    of A B^T / sqrt((N - 1)(M - 1)), so Tr (S_a S_b)^(1/2) is that matrix's nuclear norm: an
    (N, M) SVD instead of a (D, D) square root (per-class FID on a few hundred 2048-d Inception
    features: seconds instead of minutes)."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    if min(len(a), len(b)) < MIN_SAMPLES:
        raise UserError(f"FID needs at least {MIN_SAMPLES} images per set; got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    return float(diff.dot(diff) + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2 * cross)


def compute(inputs) -> dict:
    """The registry's `fid` (coral_ft.metrics.registry): samples against the reference's statistics."""
    ref = inputs.reference
    return {"value": fid_from_stats(*gaussian_stats(inputs.features), ref.mu, ref.sigma)}
