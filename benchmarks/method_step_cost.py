"""Training-step cost of every method relative to `ddpm` on the same preset and batch.

CBDM and the ambient baseline run a second U-Net forward per step, so they should cost about
twice a DDPM step; T2H adds only a B x B distance matrix; CORAL a small head and SupCon (nearly
free). Trainers are built side by side and their steps interleaved (ddpm, cbdm, t2h, ...) so
machine noise hits all alike; medians are compared. Data: random uint8 images of the preset's
shape (cost does not depend on content). Reuses the helpers of coral_step_cost.py.

    python benchmarks/method_step_cost.py --preset tiny --batch-size 64 --steps 20
    python benchmarks/method_step_cost.py --preset ddpm-cifar --batch-size 128 --steps 20   # GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from coral_step_cost import SHAPES, make_trainer, random_data

METHODS = ("ddpm", "cbdm", "t2h", "ambient", "coral")


def timed_step(trainer) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.train_step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    methods = ["ddpm"] + [m for m in args.methods.split(",") if m != "ddpm"]

    data = random_data(args.preset)
    with tempfile.TemporaryDirectory() as workdir:
        trainers = {m: make_trainer(m, args.preset, args.batch_size, data, workdir) for m in methods}
        times: dict[str, list[float]] = {m: [] for m in trainers}
        for i in range(args.warmup + args.steps):
            for method, trainer in trainers.items():
                t = timed_step(trainer)
                if i >= args.warmup:
                    times[method].append(t)
    med = {m: statistics.median(v) for m, v in times.items()}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"preset={args.preset} batch={args.batch_size} steps={args.steps} device={device}")
    print(f"  {'method':8s} {'median ms':>10s} {'vs ddpm':>8s}")
    for m, v in med.items():
        print(f"  {m:8s} {v * 1000:10.1f} {v / med['ddpm']:8.2f}x")


if __name__ == "__main__":
    main()
