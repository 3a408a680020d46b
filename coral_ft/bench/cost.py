"""What a trial's training cost: trainable parameters, the size of what it saves, peak memory and
the time of a step (the fine-tune protocol reports them per arm: LoRA against full fine-tuning).

Peak memory is the device's, and each figure says which (`peak_memory_of`): on a GPU torch's peak
allocation during the training stage ("gpu-allocated"); on a CPU the process's peak resident set
during the stage ("cpu-process-rss": Linux /proc/self/status VmHWM, reset through
/proc/self/clear_refs when the stage begins), None where the system offers neither. Runs measured
before this had no `peak_memory_of` and recorded how far the resident set rose during the stage.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.training import list_checkpoints

MIB = 2**20


PEAK_MEMORY_LABELS = {
    "gpu-allocated": "GPU memory allocated (torch's peak)",
    "cpu-process-rss": "the process's peak resident set",
    None: "rise of the process's resident set during training",  # runs measured before the kind was recorded
}


@dataclass
class Measured:
    peak_memory_mib: float | None = None
    peak_memory_of: str | None = None


@dataclass
class RunCost:
    trainable_parameters: int  # U-Net weights that train (all of them, or adapters + class embedding) + the head
    saved_mib: float  # the exported model folder (LoRA: the adapter folder)
    peak_memory_mib: float | None
    step_seconds: float | None  # median over the logged windows of metrics.jsonl
    peak_memory_of: str | None = None  # a key of PEAK_MEMORY_LABELS

    @classmethod
    def of_run(cls, run: RunDir, measured: Measured) -> RunCost:
        return cls(trainable_parameters(run), folder_mib(run.model), measured.peak_memory_mib, step_seconds(run.metrics),
                   measured.peak_memory_of)


def trainable_parameters(run: RunDir) -> int:
    """Parameters in the newest checkpoint's trainable tensors (read from the file header only)."""
    from safetensors import safe_open

    found = list_checkpoints(run.checkpoints)
    if not found:
        return 0
    with safe_open(found[-1][1] / "trainable.safetensors", "pt") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / MIB


def step_seconds(metrics: Path) -> float | None:
    if not metrics.is_file():
        return None
    rates = [json.loads(line).get("steps_per_sec") for line in metrics.read_text().splitlines() if line.strip()]
    rates = [r for r in rates if r]
    return 1.0 / statistics.median(rates) if rates else None


@contextlib.contextmanager
def measure_training(device: str):
    """Peak memory of the work inside the block (device memory on a GPU, resident set on a CPU)."""
    import torch

    measured = Measured()
    on_gpu = str(device).startswith("cuda") and torch.cuda.is_available()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    else:
        reset = _reset_peak_rss()
    yield measured
    if on_gpu:
        measured.peak_memory_mib, measured.peak_memory_of = torch.cuda.max_memory_allocated() / MIB, "gpu-allocated"
    elif reset is not None and (peak := _status_mib("VmHWM")) is not None:
        measured.peak_memory_mib, measured.peak_memory_of = peak, "cpu-process-rss"


def _reset_peak_rss() -> float | None:
    """Reset the peak resident set to the current one (Linux); -> the current one, MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None
