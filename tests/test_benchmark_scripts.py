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


def _arm(seeds, tail_diff=None, lo=None, hi=None, params=1000, mib=10.0):
    vs = {} if tail_diff is None else {"tail:fid": {"diff": tail_diff, "ci95": [lo, hi], "values": [tail_diff] * seeds,
                                                    "excludes_zero": lo > 0 or hi < 0, "better": tail_diff < 0}}
    return {"seeds": list(range(seeds)), "vs_ddpm": vs, "cost": {"trainable_parameters": params, "saved_mib": mib}}


def test_the_verdict_picks_a_significant_tail_gain_and_waits_for_seeds():
    results = {"methods": {"base": _arm(1), "ddpm": _arm(5), "coral": _arm(5, -1.0, -1.5, -0.5),
                           "ddpm-lora": _arm(5, 0.1, -0.3, 0.5, params=50, mib=0.5)}}
    text = study_tables.verdict(results)
    assert "coral improves the tail FID" in text and "Pick: coral" in text and "LoRA trains 5% of the weights" in text
    results["methods"]["coral"] = _arm(5, 0.2, -0.4, 0.8)
    assert "Pick: plain fine-tuning" in study_tables.verdict(results)
    results["methods"]["ddpm"] = _arm(2)
    results["methods"]["coral"] = _arm(2, -1.0, -1.5, -0.5)
    assert "Caution: with 2 seeds" in study_tables.verdict(results)  # an exclusion on one degree of freedom
    results["methods"]["ddpm"] = _arm(5)
    results["methods"]["coral"] = _arm(1, 0.2, -0.4, 0.8)  # judged without coral, which is named as pending
    text = study_tables.verdict(results)
    assert "for ddpm, ddpm-lora:" in text and "Not judged yet (fewer than two fine-tune seeds): coral 1" in text
    assert "Pick among the judged arms: plain fine-tuning" in text
    results["methods"]["ddpm-lora"] = _arm(1, 0.1, -0.3, 0.5)
    assert study_tables.verdict(results).startswith("not decidable yet")  # nothing beside ddpm has an interval
