"""The timer every benchmark script shares: device-synchronised wall time, interleaved variants,
medians (shared machines are noisy: compare variants timed side by side, never across runs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize() -> None:
    """Wait for the GPU's queued work (a no-op on a CPU), so a timer sees the work it started."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes, device work included."""
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def interleaved_medians(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each variant, the variants run in turn (a, b, c, a, b, c, ...) so that
    machine noise hits all of them alike; the first `warmup` rounds are not counted."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + repeats):
        for name, fn in variants.items():
            seconds = timed(fn)
            if i >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(v) for name, v in times.items()}


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
