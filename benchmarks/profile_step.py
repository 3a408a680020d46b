"""Where one training step's time goes: host (Python, data) against device (kernels), and the top
operators of each, for a method and a fast-path variant.

    python benchmarks/profile_step.py --method coral --set train.mixed_precision=bf16 --set train.compile=true
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from common import SHAPES, make_trainer, random_data, timed


def device_time_us(events) -> float:
    """Microseconds the device was busy: the device-side events (kernels, copies) only. An operator
    event also carries its kernels' time as `self_device_time_total`, so summing every event would
    count each kernel twice (the profiler's own "Self CUDA time total" line is this sum)."""
    device = {torch.autograd.DeviceType.CUDA, getattr(torch.autograd.DeviceType, "PrivateUse1", None)}
    return sum(e.self_device_time_total for e in events if e.device_type in device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ddpm-cifar", choices=sorted(SHAPES))
    parser.add_argument("--method", default="coral")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        trainer = make_trainer(args.method, args.preset, args.batch_size, random_data(args.preset), workdir, args.sets)
        for _ in range(args.warmup):
            trainer.train_step()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            wall = timed(lambda: [trainer.train_step() for _ in range(args.steps)]) / args.steps
    events = prof.key_averages()
    device_us = device_time_us(events) / args.steps
    print(f"{args.method} {' '.join(args.sets)}: {wall * 1000:.1f} ms a step (profiled), device busy {device_us / 1000:.1f} ms")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    if torch.cuda.is_available():
        print(events.table(sort_by="self_cuda_time_total", row_limit=15))


if __name__ == "__main__":
    main()
