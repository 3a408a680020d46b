"""The metric math on feature arrays: closed forms, limiting cases and toy distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cleanfid.fid import kernel_distance

from coral_ft.errors import UserError
from coral_ft.metrics.fid import fid, fid_from_stats, gaussian_stats
from coral_ft.metrics.inception_score import inception_score
from coral_ft.metrics.kid import kid
from coral_ft.metrics.per_class import per_class_fid
from coral_ft.metrics.prd import max_f_beta, prd, prd_curve
from coral_ft.metrics.precision_recall import knn_radii, precision_recall


def _rotation(d, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_fid_of_two_gaussians_matches_the_closed_form():
    # Covariances R diag(a) R^T and R diag(b) R^T commute, so Tr((S1 S2)^1/2) = sum sqrt(a b).
    d = 6
    r = _rotation(d)
    a, b = np.linspace(0.5, 3.0, d), np.linspace(2.0, 0.2, d)
    mu1, mu2 = np.zeros(d), np.arange(d) / 3.0
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    got = fid_from_stats(mu1, r @ np.diag(a) @ r.T, mu2, r @ np.diag(b) @ r.T)
    assert got == pytest.approx(expected, rel=1e-6)


def test_fid_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40000, 3))
    y = rng.normal(size=(40000, 3)) * 2.0 + 1.0  # N(1, 4 I)
    expected = 3 * 1.0 + 3 * (1 + 4 - 2 * 2)  # ||mu||^2 + Tr(I + 4I - 2 * 2I)
    assert fid(x, y) == pytest.approx(expected, rel=0.03)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(2).normal(size=(300, 10))
    assert abs(fid(x, x)) < 1e-6


def test_fid_needs_two_points():
    with pytest.raises(UserError, match="at least 2"):
        gaussian_stats(np.zeros((1, 4)))


def test_inception_score_limits():
    k, n = 10, 200
    uniform = np.zeros((n, k))  # p(y|x) uniform -> KL 0 -> IS 1
    assert inception_score(uniform) == pytest.approx((1.0, 0.0), abs=1e-9)
    confident = 50.0 * np.eye(k)[np.arange(n) % k]  # one-hot-ish, classes evenly spread in every split
    mean, std = inception_score(confident)
    assert mean == pytest.approx(k, rel=1e-6) and std < 1e-6
    # All images confidently the same class: p(y|x) = p(y) -> IS 1.
    assert inception_score(50.0 * np.eye(k)[np.zeros(n, int)])[0] == pytest.approx(1.0, abs=1e-6)


def test_inception_score_needs_one_image_per_split():
    with pytest.raises(UserError, match="10 splits"):
        inception_score(np.zeros((9, 3)))


def _blobs(centres, n, seed, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, float)
    return centres[rng.integers(len(centres), size=n)] + spread * rng.normal(size=(n, centres.shape[1]))


CENTRES = np.eye(4) * 5.0  # four well separated modes in 4-d


def test_prd_curve_of_identical_histograms_reaches_one():
    h = np.array([0.1, 0.2, 0.3, 0.4])
    precision, recall = prd_curve(h, h)
    assert precision.shape == (1001,)
    assert max_f_beta(precision, recall, 8) == pytest.approx(1.0, abs=1e-3)
    assert max_f_beta(precision, recall, 1 / 8) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "sample_modes, expect_recall, expect_precision",
    [
        ([0, 1, 2, 3], (0.95, 1.01), (0.95, 1.01)),  # same distribution
        ([0], (0.0, 0.5), (0.9, 1.01)),  # a subset: precise, poor recall
    ],
)
def test_prd_on_toy_distributions(sample_modes, expect_recall, expect_precision):
    ref = _blobs(CENTRES, 400, seed=0)
    samples = _blobs(CENTRES[sample_modes], 400, seed=1)
    res = prd(samples, ref, num_clusters=8, num_runs=2)
    assert expect_recall[0] <= res.f8_recall <= expect_recall[1]
    assert expect_precision[0] <= res.f1_8_precision <= expect_precision[1]
    assert res.balance_note is None and res.samples_used == 400


def test_prd_of_disjoint_sets_is_zero():
    ref = _blobs(CENTRES[:2], 300, seed=0)
    samples = _blobs(CENTRES[2:], 300, seed=1)
    res = prd(samples, ref, num_clusters=8, num_runs=1)
    assert res.f8_recall < 0.01 and res.f1_8_precision < 0.01


def test_prd_balances_unequal_sets_and_says_so():
    ref = _blobs(CENTRES, 500, seed=0)
    res = prd(_blobs(CENTRES, 120, seed=1), ref, num_clusters=8, num_runs=1)
    assert res.samples_used == 120 and res.balance_note == "reference subsampled from 500 to 120"
    assert res.f8_recall > 0.9


def test_prd_rejects_fewer_points_than_clusters():
    with pytest.raises(UserError, match="200 clusters"):
        prd(np.zeros((50, 2)), np.zeros((80, 2)), num_clusters=200)


def _dense_precision_recall(x, y, k):
    """Reference implementation with full float64 distance matrices."""
    def radii(a):
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    cross = np.linalg.norm(x[:, None] - y[None], axis=-1)  # (N, M)
    precision = (cross <= radii(y)[None, :]).any(axis=1).mean()
    recall = (cross <= radii(x)[:, None]).any(axis=0).mean()
    return precision, recall


def test_precision_recall_matches_a_dense_computation_for_any_block_size():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(150, 5)), rng.normal(size=(120, 5)) + 0.7
    expected = _dense_precision_recall(x, y, 3)
    for block in (7, 64, 1024):
        pr = precision_recall(x, y, k=3, block=block)
        assert (pr.precision, pr.recall) == pytest.approx(expected, abs=1e-9)
    assert pr.k == 3 and (pr.num_samples, pr.num_reference) == (150, 120)
    # Given the reference's radii (as a statistics file keeps them), the result is the same.
    radii = knn_radii(torch.as_tensor(y, dtype=torch.float32), 3).numpy()
    given = precision_recall(x, y, k=3, ref_radii=radii)
    assert (given.precision, given.recall) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "sample_modes, ref_modes, precision, recall",
    [
        # k = 3 balls in 4-d miss some points of the same distribution: ~0.9, not 1.
        ([0, 1, 2, 3], [0, 1, 2, 3], (0.85, 1.0), (0.85, 1.0)),
        ([0, 1], [2, 3], (0.0, 0.0), (0.0, 0.0)),
        ([0], [0, 1, 2, 3], (0.85, 1.0), (0.0, 0.35)),
    ],
)
def test_precision_recall_on_toy_distributions(sample_modes, ref_modes, precision, recall):
    pr = precision_recall(_blobs(CENTRES[sample_modes], 400, 1), _blobs(CENTRES[ref_modes], 400, 0))
    assert precision[0] <= pr.precision <= precision[1]
    assert recall[0] <= pr.recall <= recall[1]


def test_precision_recall_needs_more_points_than_k():
    with pytest.raises(UserError, match="k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


def test_kid_matches_clean_fid_when_subsets_are_whole_sets():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 0.5
    value, size = kid(x, y, num_subsets=3)
    assert size == 60
    # With subsets as large as the sets, every subset is a permutation: no randomness left.
    assert value == pytest.approx(kernel_distance(x, y, num_subsets=3, max_subset_size=60), rel=1e-9)
    assert value > kid(x, x + 1e-3 * rng.normal(size=x.shape), num_subsets=3)[0]


def test_per_class_fid_on_a_labelled_toy_set():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], 2000)
    means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    ref = means[labels] + rng.normal(size=(6000, 2))
    shift = np.array([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])  # class 2's samples sit 2 units off
    samples = means[labels] + shift[labels] + rng.normal(size=(6000, 2))
    values = per_class_fid(samples, labels, ref, labels)
    assert set(values) == {0, 1, 2}
    assert values[0] < 0.05 and values[1] < 0.05
    assert values[2] == pytest.approx(4.0, abs=0.3)  # ||shift||^2, equal covariances


def test_per_class_fid_requires_samples_of_every_class():
    feats = np.random.default_rng(6).normal(size=(40, 2))
    labels = np.repeat([0, 1], 20)
    with pytest.raises(UserError, match=r"classes \[1\]"):
        per_class_fid(feats[:21], labels[:21], feats, labels)
    stray = np.r_[labels[:38], [5, 5]]  # two samples of a class the reference lacks
    with pytest.raises(UserError, match=r"labels \[5\]"):
        per_class_fid(feats, stray, feats, labels)


@pytest.mark.parametrize("per_class, dim", [(8, 64), (80, 16)])  # fewer points than dimensions, and more
def test_per_class_fid_holds_one_class_at_a_time(monkeypatch, per_class, dim):
    """1,000 classes: covariances, where any are formed, are computed (and freed) one class at a time;
    a class with fewer samples than dimensions needs none (the low-rank FID)."""
    import coral_ft.metrics.fid as fid_module
    import coral_ft.metrics.per_class as per_class_module

    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(1000), per_class)
    feats = rng.normal(size=(len(labels), dim)).astype(np.float32)
    live, peak = [0], [0]
    real = fid_module.gaussian_stats

    class Tracked(tuple):
        def __del__(self):
            live[0] -= 1

    def tracked(x):
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        return Tracked(real(x))

    monkeypatch.setattr(fid_module, "gaussian_stats", tracked)
    values = per_class_module.per_class_fid(feats, labels, feats[::-1].copy(), labels[::-1].copy())
    assert len(values) == 1000
    assert (peak[0] == 0) if per_class < dim else (1 <= peak[0] <= 2)  # at most one class's two statistics


@pytest.mark.parametrize("n", [500, 20])  # 20 < 64 dims: a singular covariance product
def test_frechet_distance_equals_clean_fids(n):
    from cleanfid.fid import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, 64)), rng.normal(0.3, 1.2, size=(n, 64))
    mine = fid_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    try:
        theirs = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    except TypeError:  # the SciPy without sqrtm's `disp` that fid.py works around
        pytest.skip("clean-fid's frechet_distance does not run with this SciPy")
    assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("n, m, d", [(40, 90, 128), (200, 30, 64), (300, 400, 16)])
def test_low_rank_fid_equals_the_covariance_fid(n, m, d):
    from coral_ft.metrics.fid import fid, fid_from_stats, fid_low_rank, gaussian_stats

    rng = np.random.default_rng(n)
    a, b = rng.standard_normal((n, d)), rng.standard_normal((m, d)) * 1.2 + 0.1
    direct = fid_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    assert fid_low_rank(a, b) == pytest.approx(direct, rel=1e-6)
    assert fid(a, b) == pytest.approx(direct, rel=1e-6)
