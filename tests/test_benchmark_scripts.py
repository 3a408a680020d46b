"""The parts of benchmarks/ scripts that compute a figure (not their timings)."""

import sys
from pathlib import Path
from types import SimpleNamespace

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
