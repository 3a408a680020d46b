"""Training-step cost of every method relative to `ddpm` on the same preset and batch.

CORAL's target: at most 1.05x a DDPM step (a small head and SupCon). CBDM and the ambient
baseline run a second U-Net forward per step (about 2x); T2H adds a B x B distance matrix.
Trainers are built side by side and their steps interleaved (ddpm, cbdm, ..., ddpm, ...) so that
machine noise hits all alike; medians are compared. On a GPU every step is timed between device
synchronisations. Data: random uint8 images of the preset's shape (cost does not depend on content).

    python benchmarks/step_cost.py --preset tiny --batch-size 64 --steps 30
    python benchmarks/step_cost.py --preset ddpm-cifar --batch-size 32 --steps 8 --methods ddpm,coral
    python benchmarks/step_cost.py --preset ddpm-cifar --batch-size 128 --steps 30 --set train.mixed_precision=bf16   # GPU
"""

from __future__ import annotations

import argparse
import tempfile

from common import SHAPES, device_name, interleaved_medians, make_trainer, random_data

CORAL_TARGET = 1.05


def main() -> None:
    from coral_ft.bench.schema import BENCH_VARIANTS
    from coral_ft.objectives import OBJECTIVES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", default=",".join(sorted({*OBJECTIVES, *BENCH_VARIANTS})), help="default: every one")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override, e.g. train.mixed_precision=bf16")
    args = parser.parse_args()
    methods = ["ddpm"] + [m for m in args.methods.split(",") if m != "ddpm"]

    data = random_data(args.preset)
    with tempfile.TemporaryDirectory() as workdir:
        trainers = {m: make_trainer(m, args.preset, args.batch_size, data, workdir, args.sets) for m in methods}
        med = interleaved_medians({m: t.train_step for m, t in trainers.items()}, args.steps, args.warmup)
    print(f"preset={args.preset} batch={args.batch_size} steps={args.steps} device={device_name()} {' '.join(args.sets)}")
    print(f"  {'method':11s} {'median ms':>10s} {'vs ddpm':>8s}")
    for m, v in med.items():
        print(f"  {m:11s} {v * 1000:10.1f} {v / med['ddpm']:8.3f}x")
    if "coral" in med:
        print(f"coral/ddpm step-time ratio: {med['coral'] / med['ddpm']:.3f} (target <= {CORAL_TARGET})")


if __name__ == "__main__":
    main()
