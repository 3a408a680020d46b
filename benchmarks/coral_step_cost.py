"""Training-step cost of CORAL relative to DDPM on the same preset and batch (issue target: <= 1.05).

Both trainers are built side by side and their steps interleaved (ddpm, coral, ddpm, coral, ...)
so that machine noise hits both alike; the medians are compared. Data are random uint8 images of
the preset's intended shape (the cost does not depend on their content).

    python benchmarks/coral_step_cost.py --preset tiny --batch-size 64 --steps 30
    python benchmarks/coral_step_cost.py --preset ddpm-cifar --batch-size 16 --steps 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from coral_ft.config import load_config
from coral_ft.data.registry import LabeledImages
from coral_ft.train.trainer import Trainer

SHAPES = {"tiny": (1, 16), "ddpm-cifar": (3, 32), "ddpm-64": (3, 64)}  # (channels, size)


def random_data(preset: str, num_classes: int = 10, per_class: int = 64) -> LabeledImages:
    channels, size = SHAPES[preset]
    g = torch.Generator().manual_seed(0)
    n = num_classes * per_class
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return LabeledImages(images, torch.arange(n) % num_classes, [str(i) for i in range(num_classes)])


def make_trainer(method: str, preset: str, batch_size: int, data: LabeledImages, workdir: str) -> Trainer:
    cfg = load_config(None, {"objective.method": method, "model.preset": preset, "train.batch_size": batch_size})
    return Trainer(cfg, f"{workdir}/{method}", progress=False, data=data)


def timed_step(trainer: Trainer) -> float:
    start = time.perf_counter()
    trainer.train_step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    data = random_data(args.preset)
    with tempfile.TemporaryDirectory() as workdir:
        trainers = {m: make_trainer(m, args.preset, args.batch_size, data, workdir) for m in ("ddpm", "coral")}
        times: dict[str, list[float]] = {m: [] for m in trainers}
        for i in range(args.warmup + args.steps):
            for method, trainer in trainers.items():
                t = timed_step(trainer)
                if i >= args.warmup:
                    times[method].append(t)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"preset={args.preset} batch={args.batch_size} steps={args.steps} threads={torch.get_num_threads()}")
    for m, v in med.items():
        print(f"  {m:6s} median step {v * 1000:8.1f} ms")
    ratio = med["coral"] / med["ddpm"]
    print(f"coral/ddpm step-time ratio: {ratio:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
