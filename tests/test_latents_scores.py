"""Entanglement scores on synthetic features whose structure is known."""

import numpy as np
import pytest

from coral_ft.latents.scores import (
    chance_levels,
    entanglement_scores,
    head_tail_classes,
    knn_purity,
    probe_split,
    tail_into_head,
)

COUNTS = [500, 200, 80, 30, 10, 4]  # training counts: classes 0, 1 head; 4, 5 tail
PER_CLASS = 40


def clusters(spread: float, seed: int = 0, dim: int = 8):
    """PER_CLASS points per class around class centres 10 apart; spread = noise std."""
    rng = np.random.default_rng(seed)
    centres = np.eye(len(COUNTS), dim) * 10.0
    labels = np.repeat(np.arange(len(COUNTS)), PER_CLASS)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def test_separated_clusters_score_high():
    x, y = clusters(spread=0.5)
    sc = entanglement_scores(x, y, COUNTS, k=5)
    assert sc.overall["knn_purity"] == 1.0
    assert sc.overall["silhouette"] > 0.8
    assert sc.overall["tail_into_head"] == 0.0
    assert sc.overall["probe_accuracy"] == 1.0
    assert all(v == 1.0 for v in sc.per_class["knn_purity"])
    assert sc.samples_per_class == [PER_CLASS] * len(COUNTS)


def test_mixed_clusters_score_near_chance():
    x, y = clusters(spread=0.5)
    x = np.random.default_rng(1).standard_normal(x.shape)  # features independent of the labels
    sc = entanglement_scores(x, y, COUNTS, k=5)
    chance = chance_levels(y, head=[0, 1])
    assert abs(sc.overall["knn_purity"] - chance["knn_purity"]) < 0.1
    assert abs(sc.overall["silhouette"]) < 0.1
    assert abs(sc.overall["tail_into_head"] - chance["tail_into_head"]) < 0.15
    assert sc.overall["probe_accuracy"] < 0.5
    assert sc.chance == pytest.approx(chance)


def test_tail_absorbed_into_a_head_cluster_is_measured():
    x, y = clusters(spread=0.5)
    x_absorbed = x.copy()
    for c in (4, 5):  # tail classes moved into class 0's (head) cluster
        x_absorbed[y == c] += x[y == 0].mean(0) - x[y == c].mean(0)
    sc = entanglement_scores(x_absorbed, y, COUNTS, k=5)
    assert sc.overall["tail_into_head"] > 0.3
    assert sc.per_class["tail_into_head"][4] > 0.3 and sc.per_class["tail_into_head"][5] > 0.3
    # only tail classes have the overlap score; the head classes keep theirs undefined
    assert np.isnan(sc.per_class["tail_into_head"][0]) and np.isnan(sc.per_class["tail_into_head"][2])
    # purity falls for the classes that got mixed, not for the untouched middle classes
    assert sc.per_class["knn_purity"][0] < 1.0 and sc.per_class["knn_purity"][2] == 1.0
    assert sc.overall["knn_purity"] < entanglement_scores(x, y, COUNTS, k=5).overall["knn_purity"]


def test_knn_purity_on_a_hand_example():
    # 1-D points: class 0 at 0, 1, 2; class 1 at 2.1, 10, 11. k = 1 nearest other point.
    x = np.array([[0.0], [1.0], [2.0], [2.1], [10.0], [11.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert knn_purity(x, y, k=1).tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    # sample 3 (class 1, tail) has class 0 (head) as its 2 nearest: 2.0 and 1.0
    overlap = tail_into_head(x, y, head=[0], tail=[1], k=2)
    assert overlap[3] == 1.0 and overlap[4] == 0.0 and np.isnan(overlap[0])


def test_duplicate_points_exclude_only_themselves():
    x = np.zeros((4, 2))
    y = np.array([0, 0, 1, 1])
    assert knn_purity(x, y, k=3).tolist() == [pytest.approx(1 / 3)] * 4


@pytest.mark.parametrize(
    "counts, fraction, head, tail",
    [
        ([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 1 / 3, [0, 1, 2], [7, 8, 9]),
        ([424, 2423, 1499, 2078, 227], 1 / 3, [1, 3], [0, 4]),  # CelebA-5: not in index order
        ([10, 10, 10, 10], 1 / 3, [0], [3]),  # ties: lower index counts as larger
        ([7, 3], 0.5, [0], [1]),
        ([3, 2, 1], 0.5, [0], [2]),  # head and tail never share a class
    ],
)
def test_head_tail_classes(counts, fraction, head, tail):
    assert head_tail_classes(counts, fraction) == (head, tail)


def test_probe_split_is_fixed_and_per_class():
    y = np.repeat(np.arange(3), [10, 4, 1])
    a, b = probe_split(y, seed=3), probe_split(y, seed=3)
    assert (a == b).all()
    assert [int(a[y == c].sum()) for c in range(3)] == [3, 1, 0]  # 30%, at least 1, none from a single sample
    assert not (probe_split(y, seed=4) == a).all()


def test_scores_are_deterministic():
    x, y = clusters(spread=4.0)
    a = entanglement_scores(x, y, COUNTS, k=5, seed=2).to_dict()
    b = entanglement_scores(x, y, COUNTS, k=5, seed=2).to_dict()
    assert a == b
