"""Precision and recall for distributions, PRD (Sajjadi et al., NeurIPS 2018).

Both feature sets are clustered together (MiniBatchKMeans on their union); each becomes a
histogram over the clusters, Q for the samples and P for the reference. For slopes
lambda = tan(angle), angle in (0, pi/2):

    alpha(lambda) = sum_w min(lambda P(w), Q(w))     (precision)
    beta(lambda)  = alpha(lambda) / lambda           (recall)

The curve is averaged over several clusterings. The summary is the pair
max F_8 (recall-leaning: beta = 8 weights recall more) and max F_1/8 (precision-leaning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from coral_ft.errors import UserError

CLUSTERS_PER_CLASS = 20  # the peers: 20 x number of classes
NUM_RUNS = 10
NUM_ANGLES = 1001
BETA = 8.0
_ANGLE_EPS = 1e-10  # keeps tan() finite at the ends of (0, pi/2)


@dataclass
class PRDResult:
    precision: np.ndarray  # (num_angles,) alpha(lambda), averaged over runs
    recall: np.ndarray  # (num_angles,) beta(lambda)
    f8_recall: float  # max F_8 over the curve
    f1_8_precision: float  # max F_1/8 over the curve
    num_clusters: int
    num_runs: int
    samples_used: int  # per set, after balancing
    balance_note: str | None  # which set was subsampled, if any


def prd_curve(eval_hist: np.ndarray, ref_hist: np.ndarray, num_angles: int = NUM_ANGLES):
    """PRD curve (precision, recall), each (num_angles,), of two histograms over the same bins."""
    angles = np.linspace(_ANGLE_EPS, np.pi / 2 - _ANGLE_EPS, num_angles)
    slopes = np.tan(angles)[:, None]  # (A, 1)
    precision = np.minimum(ref_hist[None, :] * slopes, eval_hist[None, :]).sum(axis=1)  # (A,)
    recall = precision / slopes[:, 0]
    return np.clip(precision, 0, 1), np.clip(recall, 0, 1)


def max_f_beta(precision: np.ndarray, recall: np.ndarray, beta: float) -> float:
    """max over the curve of F_beta = (1 + b^2) p r / (b^2 p + r)."""
    denom = beta**2 * precision + recall
    f = np.where(denom > 0, (1 + beta**2) * precision * recall / np.maximum(denom, 1e-30), 0.0)
    return float(f.max())


def balance(eval_feats: np.ndarray, ref_feats: np.ndarray, seed: int = 0):
    """Subsample the larger set to the size of the smaller (PRD assumes equal sizes)."""
    n, m = len(eval_feats), len(ref_feats)
    if n == m:
        return eval_feats, ref_feats, None
    rng = np.random.default_rng(seed)
    if n > m:
        return eval_feats[np.sort(rng.choice(n, m, replace=False))], ref_feats, f"samples subsampled from {n} to {m}"
    return eval_feats, ref_feats[np.sort(rng.choice(m, n, replace=False))], f"reference subsampled from {m} to {n}"


def _cluster_histograms(eval_feats, ref_feats, num_clusters, seed):
    data = np.concatenate([eval_feats, ref_feats]).astype(np.float32)  # (n + m, D)
    kmeans = MiniBatchKMeans(n_clusters=num_clusters, n_init=10, random_state=seed)
    labels = kmeans.fit_predict(data)
    n = len(eval_feats)
    eval_hist = np.bincount(labels[:n], minlength=num_clusters) / n
    ref_hist = np.bincount(labels[n:], minlength=num_clusters) / (len(data) - n)
    return eval_hist, ref_hist


def prd(eval_feats: np.ndarray, ref_feats: np.ndarray, num_clusters: int, *, num_runs: int = NUM_RUNS,
        num_angles: int = NUM_ANGLES, seed: int = 0) -> PRDResult:
    """PRD of samples (N, D) against a reference (M, D); any N and M (the larger is subsampled)."""
    eval_feats, ref_feats, note = balance(eval_feats, ref_feats, seed)
    if len(eval_feats) < num_clusters:
        raise UserError(
            f"PRD with {num_clusters} clusters needs at least {num_clusters} images per set; "
            f"got {len(eval_feats)} (after balancing)"
        )
    curves = [prd_curve(*_cluster_histograms(eval_feats, ref_feats, num_clusters, seed + run), num_angles)
              for run in range(num_runs)]
    precision = np.mean([c[0] for c in curves], axis=0)
    recall = np.mean([c[1] for c in curves], axis=0)
    return PRDResult(
        precision, recall,
        f8_recall=max_f_beta(precision, recall, BETA),
        f1_8_precision=max_f_beta(precision, recall, 1.0 / BETA),
        num_clusters=num_clusters, num_runs=num_runs, samples_used=len(eval_feats), balance_note=note,
    )


def compute(inputs) -> dict:
    """The registry's `prd` (coral_ft.metrics.registry): 20 clusters per class, as the peers."""
    res = prd(inputs.features, inputs.reference.features, CLUSTERS_PER_CLASS * inputs.num_classes,
              num_runs=inputs.prd_runs, seed=inputs.seed)
    return {"f8_recall": res.f8_recall, "f1_8_precision": res.f1_8_precision, "clusters": res.num_clusters,
            "runs": res.num_runs, "angles": NUM_ANGLES, "samples_used": res.samples_used, "balancing": res.balance_note}
