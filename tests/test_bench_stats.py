"""The bench's statistics, class groups and memorisation score, against known values."""

import numpy as np
import pytest
from scipy import stats

from coral_ft.bench.groups import class_groups
from coral_ft.bench.stats import paired_difference, t_interval
from coral_ft.data.longtail import longtail_counts
from coral_ft.metrics.memorisation import memorisation


def test_t_interval_against_known_values():
    iv = t_interval([1.0, 2.0, 3.0])
    # mean 2, s = 1, t_{2, 0.975} = 4.302653: half-width 4.302653 / sqrt(3) = 2.484138
    assert iv.mean == 2.0 and iv.ci95 == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert t_interval([5.0, 7.0]).ci95 == pytest.approx((6 - 12.706205, 6 + 12.706205), abs=1e-6)  # t_{1} = 12.7062
    x = np.random.default_rng(0).normal(size=20)
    lo, hi = stats.t.interval(0.95, 19, loc=x.mean(), scale=stats.sem(x))
    assert t_interval(x).ci95 == pytest.approx((lo, hi))


def test_one_value_has_no_interval_and_missing_values_are_dropped():
    assert t_interval([3.0]).ci95 is None and t_interval([3.0]).mean == 3.0
    assert t_interval([1.0, None, float("nan"), 3.0]).values == [1.0, 3.0]
    assert np.isnan(t_interval([]).mean)


def test_paired_difference_uses_matched_seeds():
    a, b = [10.0, 12.0, 11.0], [9.0, 10.0, 10.0]  # differences 1, 2, 1
    iv = paired_difference(a, b)
    assert iv.values == [1.0, 2.0, 1.0] and iv.mean == pytest.approx(4 / 3)
    half = 4.302653 * np.std([1, 2, 1], ddof=1) / np.sqrt(3)
    assert iv.ci95 == pytest.approx((4 / 3 - half, 4 / 3 + half), abs=1e-5)
    assert not iv.excludes_zero()  # 3 seeds, a spread of 1: not distinguishable from 0
    assert paired_difference([2.0, 2.1, 2.05], [1.0, 1.1, 1.0]).excludes_zero()
    # Pairing removes the seed effect that separate intervals carry: a constant gap of 1 on top of
    # a seed effect of +-5 is certain when paired, invisible when the two intervals are compared.
    seed_effect = np.array([0.0, 5.0, -5.0])
    a, b = t_interval(seed_effect + 1), t_interval(seed_effect)
    assert a.ci95[0] < b.ci95[1] and b.ci95[0] < a.ci95[1]  # the separate intervals overlap
    assert paired_difference(list(seed_effect + 1), list(seed_effect)).ci95 == (1.0, 1.0)


@pytest.mark.parametrize("name, counts, rule, sizes", [
    ("CIFAR10-LT rho 0.01", longtail_counts(5000, 10, 0.01), "thirds", (4, 3, 3)),
    ("CIFAR10-LT rho 0.001", longtail_counts(5000, 10, 0.001), "shots", (6, 2, 2)),
    ("CIFAR100-LT rho 0.01", longtail_counts(500, 100, 0.01), "shots", (35, 35, 30)),
    ("CelebA-5", [424, 2423, 1499, 2078, 227], "thirds", (2, 2, 1)),
    ("digits-LT rho 0.1", longtail_counts(143, 10, 0.1), "shots", (2, 6, 2)),
])
def test_groups_on_the_papers_data_sets(name, counts, rule, sizes):
    groups = class_groups(counts)
    assert groups.rule == rule, name
    assert tuple(len(c) for c in groups.classes.values()) == sizes, name
    assert sorted(c for cs in groups.classes.values() for c in cs) == list(range(len(counts)))


def test_imagenet_lt_groups_follow_the_oltr_convention():
    # OLTR's ImageNet-LT: 385 many-shot, 479 medium-shot, 136 few-shot classes (1280 .. 5 images).
    counts = [200] * 385 + [50] * 479 + [10] * 136
    groups = class_groups(counts)
    assert groups.rule == "shots" and [len(c) for c in groups.classes.values()] == [385, 479, 136]
    assert class_groups([100, 20, 19]).rule == "thirds"  # 100 images is medium-shot: no many-shot class


def test_thirds_put_the_largest_classes_at_the_head():
    groups = class_groups([110, 500, 140, 300, 120, 160])  # all many-shot: thirds
    assert groups.rule == "thirds" and groups.classes == {"head": [1, 3], "middle": [2, 5], "tail": [0, 4]}


def test_memorisation_scores_copies_as_memorised_and_fresh_draws_not():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(3, 8))
    labels = np.repeat([0, 1, 2], 40)
    train = centres[labels] + rng.normal(size=(120, 8))
    heldout = centres[np.repeat([0, 1, 2], 200)] + rng.normal(size=(600, 8))
    copies = train + 1e-3 * rng.normal(size=train.shape)
    fresh = centres[labels] + rng.normal(size=(120, 8))
    memo_copies = memorisation(copies, labels, train, labels, heldout, np.repeat([0, 1, 2], 200))
    memo_fresh = memorisation(fresh, labels, train, labels, heldout, np.repeat([0, 1, 2], 200))
    assert memo_copies.share(labels, [0, 1, 2]) == 1.0
    assert (memo_copies.nearest_train == np.arange(120)).all()  # each copy's nearest image is its original
    assert memo_fresh.share(labels, [0, 1, 2]) < 0.15  # about the 5% a held-out image scores
    assert memo_fresh.share(labels, [7]) is None  # no samples of that class
