"""What split-invariant (keyed) dropout costs against torch's own, per training forward + backward.

The trainer draws dropout masks from each sample's key (coral_ft/models/dropout.py) so that
`--grad-accum` and several GPUs train on exactly the masks one process would use. The masks are a
counter-based hash over every element: a few integer operations per activation. This script times
one denoiser forward + backward at dropout 0.1 with keys (the trainer's path) and without
(torch's dropout), interleaved, and prints the medians and their ratio.

    python benchmarks/dropout_cost.py --preset ddpm-cifar --batch-size 8
    python benchmarks/dropout_cost.py --preset tiny --batch-size 64 --compile   # compiled: the hash fuses
"""

from __future__ import annotations

import argparse

import torch
from common import SHAPES, device_name, interleaved_medians

from coral_ft.models.denoiser import Denoiser, build_head
from coral_ft.models.dropout import sample_keys
from coral_ft.models.presets import build_unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser (both variants)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    channels, size = SHAPES[args.preset]
    torch.manual_seed(0)
    unet = build_unet(args.preset, size, channels, 10, dropout=args.dropout)
    model = Denoiser(unet, build_head(unet)).to(device).train()
    run = torch.compile(model) if args.compile else model
    b = args.batch_size
    x = torch.randn(b, channels, size, size, device=device)
    t = torch.randint(0, 1000, (b,), device=device)
    y = torch.randint(0, 10, (b,), device=device)
    keys = sample_keys(0, b).to(device)

    def step(keyed: bool):
        out = run(x, t, y, dropout_keys=keys if keyed else None)
        (out.eps.square().mean() + out.embedding.sum()).backward()

    med = interleaved_medians({"torch dropout": lambda: step(False), "keyed dropout": lambda: step(True)},
                              args.steps, args.warmup)
    print(f"preset={args.preset} batch={b} dropout={args.dropout} compile={args.compile} device={device_name()}")
    for name, v in med.items():
        print(f"  {name:14s} {v * 1000:9.1f} ms  {v / med['torch dropout']:.3f}x")


if __name__ == "__main__":
    main()
