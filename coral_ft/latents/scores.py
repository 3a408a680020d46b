"""Entanglement scores of labelled features: numbers for what the paper only shows (Figs. 1, 9-13).

Pure functions on an (N, D) feature array, its (N,) labels and the TRAINING class counts (which
say which classes are head and which are tail). Each score is given per class and overall:

- k-NN purity: for each sample, the share of its k nearest neighbours (itself excluded) with its
  own class. 1 = classes in separate clusters; about 1/C = classes fully mixed.
- silhouette (scikit-learn): (b - a) / max(a, b) per sample, a = mean distance to its own class,
  b = mean distance to the nearest other class; in [-1, 1].
- tail-into-head overlap: for each tail-class sample, the share of its k nearest neighbours that
  are head-class samples - the "tail absorbed into head clusters" of paper Fig. 1, as a number.
  Head = the `head_fraction` of classes with the most training images, tail = the same share with
  the fewest (ties: lower class index counts as larger, eq. 8's order). Only tail classes have it.
- linear probe: logistic regression on standardised features, trained on a fixed, seeded,
  per-class split of the samples and scored on the held-out part (accuracy; per class: recall).

Overall values are means over samples, except the probe's, which is the held-out accuracy.
`chance` gives what each score would be for features carrying no class information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PROBE_TEST_FRACTION = 0.3
SCORE_NAMES = ("knn_purity", "silhouette", "tail_into_head", "probe_accuracy")


def head_tail_classes(counts: list[int], head_fraction: float = 1 / 3) -> tuple[list[int], list[int]]:
    """(head classes, tail classes): the round(fraction * C) classes with most / fewest images
    (at least one each; 3 + 3 of CIFAR-10's 10, 33 + 33 of CIFAR-100's 100, 2 + 2 of CelebA-5's 5)."""
    if not 0 < head_fraction <= 0.5:
        raise ValueError(f"head_fraction must be in (0, 0.5]; got {head_fraction}")
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))  # largest first
    n = max(1, math.floor(head_fraction * len(counts) + 0.5))
    n = min(n, len(counts) // 2)  # head and tail never share a class
    return sorted(order[:n]), sorted(order[len(order) - n :])


def _neighbours(features: np.ndarray, k: int, metric: str) -> np.ndarray:
    """(N, k) indices of each sample's k nearest other samples."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(features) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(features)
    idx = nn.kneighbors(features, return_distance=False)  # (N, k + 1), usually self first
    # Drop self (not always column 0 when there are duplicate points), keep k others.
    rows = np.arange(len(features))[:, None]
    not_self = idx != rows
    return np.stack([r[m][:k] for r, m in zip(idx, not_self)])


def knn_purity(features: np.ndarray, labels: np.ndarray, k: int = 10, metric: str = "euclidean") -> np.ndarray:
    """(N,) share of each sample's k nearest neighbours with its label."""
    nbrs = _neighbours(features, k, metric)
    return (labels[nbrs] == labels[:, None]).mean(axis=1)


def tail_into_head(
    features: np.ndarray, labels: np.ndarray, head: list[int], tail: list[int], k: int = 10, metric: str = "euclidean"
) -> np.ndarray:
    """(N,) share of head-class samples among each sample's k neighbours; NaN off the tail."""
    nbrs = _neighbours(features, k, metric)
    share = np.isin(labels[nbrs], head).mean(axis=1)
    return np.where(np.isin(labels, tail), share, np.nan)


def silhouette(features: np.ndarray, labels: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """(N,) per-sample silhouette (0 everywhere when fewer than two classes are present)."""
    from sklearn.metrics import silhouette_samples

    if len(np.unique(labels)) < 2:
        return np.zeros(len(labels))
    return silhouette_samples(features, labels, metric=metric)


def probe_split(labels: np.ndarray, seed: int = 0, test_fraction: float = PROBE_TEST_FRACTION) -> np.ndarray:
    """(N,) bool, True = held out: per class round(fraction * n) samples (at least one when n >= 2)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_test = max(1, round(test_fraction * len(idx))) if len(idx) >= 2 else 0
        test[rng.permutation(idx)[:n_test]] = True
    return test


def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on a fixed split -> (held-out mask (N,), predictions (N,), -1 off it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = probe_split(labels, seed)
    pred = np.full(len(labels), -1)
    if len(np.unique(labels[~test])) < 2 or not test.any():
        return test, pred
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(features[~test], labels[~test])
    pred[test] = probe.predict(features[test])
    return test, pred


@dataclass
class EntanglementScores:
    """Scores of one feature set: overall and per class (NaN where a score does not apply)."""

    overall: dict[str, float]
    per_class: dict[str, list[float]]  # score name -> (C,) values, index = class
    samples_per_class: list[int] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)  # expected values if labels were shuffled

    def to_dict(self) -> dict:
        return {
            "overall": {k: _json_float(v) for k, v in self.overall.items()},
            "chance": {k: _json_float(v) for k, v in self.chance.items()},
            "per_class": {k: [_json_float(x) for x in v] for k, v in self.per_class.items()},
            "samples_per_class": self.samples_per_class,
        }


def _json_float(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def chance_levels(labels: np.ndarray, head: list[int]) -> dict[str, float]:
    """Expected purity, overlap and probe accuracy of features that carry no class information."""
    n = len(labels)
    sizes = np.bincount(labels).astype(float)
    return {
        "knn_purity": float((sizes * (sizes - 1)).sum() / (n * (n - 1))),  # a random other sample shares the class
        "silhouette": 0.0,
        "tail_into_head": float(np.isin(labels, head).sum() / (n - 1)),
        "probe_accuracy": float((sizes / n).max()),  # always guessing the most frequent class
    }


def _nanmean(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(v.mean()) if len(v) else float("nan")


def entanglement_scores(
    features: np.ndarray,
    labels: np.ndarray,
    counts: list[int],
    k: int = 10,
    head_fraction: float = 1 / 3,
    seed: int = 0,
    metric: str = "euclidean",
) -> EntanglementScores:
    """All four scores of (N, D) `features` with (N,) int `labels`; `counts` = training counts per class."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be (N, D) with N = len(labels); got {features.shape} and {len(labels)}")
    if len(labels) < 3:
        raise ValueError("need at least 3 samples to score neighbourhoods")
    num_classes = len(counts)
    head, tail = head_tail_classes(counts, head_fraction)
    purity = knn_purity(features, labels, k, metric)
    sil = silhouette(features, labels, metric)
    overlap = tail_into_head(features, labels, head, tail, k, metric)
    test, pred = linear_probe(features, labels, seed)
    correct = np.where(test & (pred >= 0), (pred == labels).astype(float), np.nan)
    per_sample = dict(zip(SCORE_NAMES, (purity, sil, overlap, correct)))  # NaN: the score does not apply
    return EntanglementScores(
        overall={name: _nanmean(v) for name, v in per_sample.items()},
        per_class={name: [_nanmean(v[labels == c]) for c in range(num_classes)] for name, v in per_sample.items()},
        samples_per_class=np.bincount(labels, minlength=num_classes).tolist(),
        chance=chance_levels(labels, head),
    )
