"""The parts of benchmarks/ scripts that compute a figure (not their timings)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import profile_step  # noqa: E402
import study_tables  # noqa: E402


def test_device_time_counts_each_kernel_once():
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    # An operator (on the host) reports its kernel's device time too; the kernel is the device event.
    events = [SimpleNamespace(device_type=cpu, self_device_time_total=700.0),
              SimpleNamespace(device_type=cuda, self_device_time_total=700.0),
              SimpleNamespace(device_type=cuda, self_device_time_total=300.0),
              SimpleNamespace(device_type=cpu, self_device_time_total=0.0)]
    assert profile_step.device_time_us(events) == 1000.0


def test_study_page_is_what_the_measurements_give():
    # docs/study.md's tables and measured numbers come from docs/measurements/ (no hand-typed drift).
    assert study_tables.main(["--check"]) == 0, "run: python benchmarks/study_tables.py"


def test_seeds_for_half_width():
    assert study_tables.seeds_for_half_width(0.24, 0.26) == 6


@pytest.mark.slow
def test_the_gpu_check_runs_at_smoke_scale_on_a_cpu(tmp_path):
    import json
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), "--device", "cpu", "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["numerics"]["within_tolerance"] and report["numerics"]["graphs_vs_default"]["grad_cosine"] > 0.999
    assert {"ddpm/fp32", "coral/fp32"} <= set(report["train_seconds_per_step"])
    assert report["sampling_numerics"]["graphs_vs_default"]["max"] <= 2  # fp32 either side: layout only
    for method in ("ddpm", "coral"):
        with np.load(tmp_path / f"samples-{method}.npz") as f:
            assert f["images"].shape == (40, 8, 8, 1) and f["images"].dtype == np.uint8


def test_supcon_floor_is_the_mean_log_count_of_positives():
    import math

    # one class: every anchor has the other B - 1 as positives
    assert study_tables.supcon_floor([100], batch=8, draws=10) == pytest.approx(math.log(7))


def _results(arms: dict[str, list[float]], ddpm: list[float], costs: dict | None = None) -> dict:
    """A fine-tune results.json: per arm its per-seed tail FIDs, paired with ddpm's."""
    from coral_ft.bench.stats import paired_difference

    def measured(values):
        return {"tail:fid": {"mean": sum(values) / len(values), "values": values}}

    methods = {"base": {"seeds": [0], "measured": measured([9.0])},
               "ddpm": {"seeds": list(range(len(ddpm))), "measured": measured(ddpm), "cost": (costs or {}).get("ddpm")}}
    for arm, values in arms.items():
        iv = paired_difference(values, ddpm)
        methods[arm] = {"seeds": list(range(len(values))), "measured": measured(values), "cost": (costs or {}).get(arm),
                        "vs_ddpm": {"tail:fid": {"diff": iv.mean, "ci95": list(iv.ci95) if iv.ci95 else None,
                                                 "values": iv.values, "excludes_zero": iv.excludes_zero(),
                                                 "better": iv.mean < 0}}}
    return {"scale": "paper", "metrics": [], "groups": {"classes": {"head": [0], "tail": [1]}}, "methods": methods}


def test_the_study_verdict_follows_the_bench_rules():
    ddpm = [10.0, 11.0, 12.0, 10.5, 11.5]
    costs = {"ddpm": {"trainable_parameters": 1000, "saved_mib": 10.0},
             "ddpm-lora": {"trainable_parameters": 50, "saved_mib": 0.5}}
    strong = [d - 2.0 + e for d, e in zip(ddpm, [0.01, -0.02, 0.015, 0.0, -0.01])]
    text = study_tables.verdict(_results({"coral": strong, "ddpm-lora": [d + 0.1 for d in ddpm]}, ddpm, costs))
    assert "coral tail:fid -2.00" in text and "Pick: coral" in text and "LoRA trains 5% of the weights" in text
    assert "agree exactly" in text  # ddpm-lora's differences are all +0.1: no evidence, no test
    noisy = [d + e for d, e in zip(ddpm, [0.5, -0.4, 0.3, -0.6, 0.1])]
    assert "Pick: plain fine-tuning" in study_tables.verdict(_results({"coral": noisy}, ddpm, costs))
    two = study_tables.verdict(_results({"coral": strong[:2]}, ddpm[:2]))
    assert "No verdict: 2 common seed(s)" in two and "No pick yet" in two  # however strong, two seeds name nothing


def _with_worse(results: dict, arm: str, metric: str, diff: float) -> dict:
    """`arm` worse than ddpm on `metric` on every seed, by a margin its uncorrected interval separates from 0."""
    results["metrics"] = [*results["metrics"], metric.split(":")[-1]]
    results["methods"][arm]["vs_ddpm"][metric] = {"diff": diff, "ci95": [diff * 1.5, diff * 0.5],
                                                  "values": [diff, diff * 1.25, diff * 0.75, diff, diff],
                                                  "excludes_zero": True, "better": False}
    return results


def test_a_distance_gain_is_a_pick_with_its_cost_named():
    ddpm = [10.0, 11.0, 12.0, 10.5, 11.5]
    strong = [d - 2.0 + e for d, e in zip(ddpm, [0.01, -0.02, 0.015, 0.0, -0.01])]
    text = study_tables.verdict(_with_worse(_results({"coral": strong}, ddpm), "coral", "recall", -0.02))
    assert "Pick: coral, on this evidence (better tail:fid; its cost, a worse recall (-0.020" in text
    assert "recall (-0.020, Holm-adjusted p = 0.000))" in text  # a cost the correction names says so
    assert "a trade" not in text


def test_a_gain_paid_for_on_a_distance_metric_is_a_trade_not_a_pick():
    ddpm = [10.0, 11.0, 12.0, 10.5, 11.5]
    strong = [d - 2.0 + e for d, e in zip(ddpm, [0.01, -0.02, 0.015, 0.0, -0.01])]
    text = study_tables.verdict(_with_worse(_results({"coral": strong}, ddpm), "coral", "fid", 0.5))
    assert "coral's better tail:fid comes with a worse fid (+0.50" in text and "a trade, not a gain" in text
    assert "Pick: plain fine-tuning" in text and "Pick: coral" not in text


def test_a_distance_gain_outranks_a_recall_gain_however_small_its_p():
    ddpm = [10.0, 11.0, 12.0, 10.5, 11.5]
    strong = [d - 2.0 + e for d, e in zip(ddpm, [0.01, -0.02, 0.015, 0.0, -0.01])]
    noisy = [d + e for d, e in zip(ddpm, [0.5, -0.4, 0.3, -0.6, 0.1])]
    results = _results({"coral": strong, "other": noisy}, ddpm)
    results["metrics"] = ["recall"]
    recall = [0.02, 0.02001, 0.01999, 0.02, 0.020005]  # tighter than coral's tail FID: the smaller p
    results["methods"]["other"]["vs_ddpm"]["recall"] = {"diff": sum(recall) / 5, "ci95": [0.0199, 0.0201],
                                                        "values": recall, "excludes_zero": True, "better": True}
    from coral_ft.bench.verdict import judge

    p = {t["arm"]: t["p_holm"] for t in judge(results, "ddpm", "base")["named"]}
    assert p["other"] < p["coral"]  # the old rule, the smallest p, would have picked `other`
    text = study_tables.verdict(results)
    assert "Pick: coral, on this evidence (better tail:fid)" in text
    assert "other is better too, in recall, with nothing worse, but in no distance to the data." in text


def _latents_report(folder: Path, rows: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    lines = ["header", "", "model t features purity silh tail>head probe", "-- -- -- -- -- -- --"]
    lines += [f"{model} 100 bottleneck {p} 0.1 0.0 0.5" for model, p in rows.items()] + ["(chance) 0.1 0 0.3 0.1"]
    (folder / "latents.txt").write_text("\n".join(lines) + "\n")


def test_latents_table_keeps_each_base_apart_and_averages_its_seeds(tmp_path):
    _latents_report(tmp_path / "lt-seed-0-null", {"base": 0.6, "ddpm": 0.4})
    _latents_report(tmp_path / "lt-seed-4-null", {"base": 0.8, "ddpm": 0.6})
    _latents_report(tmp_path / "uncond-seed-0-null", {"base": 0.2})
    means = study_tables.latents_means(tmp_path, "null")
    assert means[("lt", "base", 100)]["purity"] == pytest.approx(0.7) and means[("lt", "base", 100)]["n"] == 2
    assert means[("uncond", "base", 100)]["purity"] == pytest.approx(0.2) and means[("uncond", "base", 100)]["n"] == 1
    assert study_tables.latents_table(tmp_path).splitlines()[0].startswith("| base | model | t | reports")
    _latents_report(tmp_path / "scratch" / "seed-0-null", {"ddpm": 0.5})  # the from-scratch study: no base column
    assert study_tables.latents_table(tmp_path / "scratch").splitlines()[0].startswith("| model | t")
