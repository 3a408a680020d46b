"""The verdict's rules on made-up per-seed numbers: exact agreement is no evidence, a strong arm
among many survives Holm's correction only with 3+ seeds, and without a finding the verdict gives
the smallest detectable difference."""

import pytest

from coral_ft.bench.stats import detectable_difference, holm, paired_difference
from coral_ft.bench.verdict import judge
from coral_ft.metrics.registry import higher_is_better


def make_results(arms: dict[str, list[float]], baseline: list[float], scale: str = "small", metric: str = "fid") -> dict:
    """A results.json skeleton: per arm its per-seed values of one metric (FID: lower is better),
    paired with the baseline's."""
    def measured(values):
        return {metric: {"mean": sum(values) / len(values), "values": values}}

    methods = {"ddpm": {"measured": measured(baseline), "seeds": list(range(len(baseline)))}}
    for arm, values in arms.items():
        iv = paired_difference(values, baseline)
        methods[arm] = {"measured": measured(values), "seeds": list(range(len(values))),
                        "vs_ddpm": {metric: {"diff": iv.mean, "ci95": list(iv.ci95) if iv.ci95 else None,
                                             "values": iv.values, "excludes_zero": iv.excludes_zero(),
                                             "better": (iv.mean > 0) == higher_is_better(metric)}}}
    return {"scale": scale, "metrics": [metric], "groups": {}, "methods": methods}


def test_identical_differences_are_no_evidence():
    iv = paired_difference([1.025, 2.025], [1.0, 2.0])
    assert iv.agree_exactly and iv.ci95 is not None and not iv.excludes_zero() and iv.p_value is None
    verdict = judge(make_results({"coral": [1.025, 2.025, 3.025]}, [1.0, 2.0, 3.0]), "ddpm", "base")
    assert verdict["named"] == [] and verdict["family"] == 0
    assert "agree exactly" in verdict["text"] and "coral" in verdict["text"]


def test_two_seeds_name_no_arm_however_strong():
    verdict = judge(make_results({"coral": [0.5, 1.49]}, [1.5, 2.5]), "ddpm", "base")
    assert verdict["named"] == [] and "No verdict: 2 common seed(s)" in verdict["text"]


def test_one_strong_arm_among_many_survives_holm_and_the_rest_do_not():
    baseline = [10.0, 11.0, 12.0, 10.5, 11.5]
    arms = {"strong": [b - 2.0 + e for b, e in zip(baseline, [0.01, -0.02, 0.015, 0.0, -0.01])]}
    # weak arms whose uncorrected p-values are below 0.05 but not after correcting for 8 comparisons
    for k in range(7):
        arms[f"weak{k}"] = [b - 0.3 + e for b, e in zip(baseline, [0.2, -0.15, 0.1, -0.12, 0.0])]
    verdict = judge(make_results(arms, baseline), "ddpm", "base")
    weak_p = [t["p"] for t in verdict["tests"] if t["arm"] == "weak0"][0]
    assert weak_p < 0.05  # uncorrected, a weak arm would count as a finding ...
    assert [t["arm"] for t in verdict["named"]] == ["strong"]  # ... Holm keeps only the strong one
    assert verdict["family"] == 8 and "strong fid -2.00" in verdict["text"]


def test_the_inception_score_is_written_IS_in_the_sentence():
    # "coral is +2.00" reads as the verb; the verdict writes the metric's name as IS
    baseline = [8.0, 9.0, 10.0, 8.5, 9.5]
    named = judge(make_results({"coral": [b + 2.0 + e for b, e in zip(baseline, [0.01, -0.02, 0.015, 0.0, -0.01])]},
                               baseline, metric="is"), "ddpm", "base")
    assert "coral IS +2.00 (better" in named["text"]
    flat = judge(make_results({"coral": [8.5, 8.7, 10.4]}, baseline[:3], metric="is"), "ddpm", "base")
    assert "IS " in flat["text"].split("could have detected")[1] and " is 0" not in flat["text"]


def test_without_a_finding_the_verdict_gives_the_detectable_difference():
    baseline = [10.0, 11.0, 12.0]
    verdict = judge(make_results({"coral": [10.5, 10.7, 12.4], "other": [9.8, 11.5, 11.9]}, baseline), "ddpm", "base")
    assert verdict["named"] == []
    d = verdict["detectable"]["fid"]
    assert d["value"] > 0 and d["percent"] == pytest.approx(100 * d["value"] / 11.0)
    assert "No arm is distinguishable from ddpm" in verdict["text"] and "smallest differences" in verdict["text"]


def test_smoke_scale_gives_no_verdict():
    verdict = judge(make_results({"coral": [0.0, 0.0, 0.0]}, [5.0, 6.0, 7.0], scale="smoke"), "ddpm", "base")
    assert verdict["named"] == [] and "noise" in verdict["text"]


def test_holm_against_hand_computed_values():
    # p sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_detectable_difference_shrinks_with_seeds():
    assert detectable_difference(1.0, 3, 0.05) > detectable_difference(1.0, 10, 0.05) > 0
    assert detectable_difference(1.0, 1, 0.05) == float("inf")
