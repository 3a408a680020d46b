"""FID against the number of steps for every sampler, beside 1000-step ancestral DDPM: how many
steps each needs to come within 5% of it (docs/sampling.md).

One trained model, one set of labels and per-sample seeds for every sampler, the same metric
network and reference as its bench (the bench folder's classifier.pt / reference.npz, or
TF-Inception with --weights-dir). A sampler is "within 5%" at the fewest steps whose FID is at most
1.05 x the DDPM-1000 FID.

    python benchmarks/sampler_steps.py --model runs/digits-bench/ddpm/seed-0/run --bench runs/digits-bench
    python benchmarks/sampler_steps.py --model RUN --bench BENCH --num 5000 --steps 10,20,50,100   # a GPU
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import timed

from coral_ft.bench.classifier import load_or_train
from coral_ft.checkpoint.model import load_model
from coral_ft.config import load_config
from coral_ft.data.batches import to_uint8
from coral_ft.metrics.fid import fid_from_stats, gaussian_stats
from coral_ft.metrics.reference import load_reference_stats
from coral_ft.sample.labels import make_labels, sample_seeds
from coral_ft.sample.samplers import SAMPLERS, sample

TOLERANCE = 1.05


def metric_network(bench: Path, image_shape, num_classes: int, args):
    """The bench's classifier when it has one, else TF-Inception."""
    if (bench / "classifier.pt").is_file():
        dummy = np.zeros((1, *image_shape), np.uint8)  # only the channel count is read: the file exists
        return load_or_train(bench / "classifier.pt", dummy, None, num_classes)
    from coral_ft.metrics.features import load_inception

    return load_inception(args.weights_dir, args.device, 256, args.resize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a run directory")
    parser.add_argument("--bench", type=Path, required=True, help="the bench folder with reference.npz (and classifier.pt)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--steps", default="5,10,20,50,100")
    parser.add_argument("--guidance", type=float, default=None, help="default: the run's sample.guidance")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights-dir", default=None)
    parser.add_argument("--resize", default="clean")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    unet, scheduler, info = load_model(args.model, args.device)
    config = load_config(args.model / "config.toml")
    base = replace(config.sample, guidance=args.guidance if args.guidance is not None else config.sample.guidance)
    labels = make_labels("balanced", args.num, info.class_names, 0)
    seeds = sample_seeds(0, range(args.num))
    shape = (unet.config.sample_size, unet.config.sample_size, unet.config.in_channels)
    net = metric_network(args.bench, shape, len(info.class_names), args)
    ref = load_reference_stats(args.bench / "reference.npz").network(net, "fid")

    def fid_of(settings) -> tuple[float, float]:
        images = []

        def draw():
            for i in range(0, args.num, args.batch_size):
                x = sample(unet, scheduler, labels[i:i + args.batch_size], seeds[i:i + args.batch_size], settings)
                images.append(to_uint8(x).permute(0, 2, 3, 1).cpu().numpy())

        seconds = timed(draw)
        return fid_from_stats(*gaussian_stats(net.features(np.concatenate(images))), ref.mu, ref.sigma), seconds

    rows = {}
    reference, seconds = fid_of(replace(base, sampler="ddpm", steps=None))
    rows["ddpm/1000"] = {"fid": reference, "seconds": seconds}
    print(f"{args.num} samples, W = {base.guidance}: ddpm 1000 steps FID {reference:.3f} ({seconds:.0f} s)", flush=True)
    within = {}
    for name in SAMPLERS:
        for steps in map(int, args.steps.split(",")):
            fid, seconds = fid_of(replace(base, sampler=name, steps=steps))
            rows[f"{name}/{steps}"] = {"fid": fid, "seconds": seconds}
            ok = fid <= TOLERANCE * reference
            if ok and name not in within:
                within[name] = steps
            print(f"  {name:6s} {steps:4d} steps: FID {fid:8.3f} ({fid / reference:5.2f}x DDPM-1000){'  within 5%' if ok else ''}"
                  f" ({seconds:.0f} s)", flush=True)
    print("fewest steps within 5% of DDPM-1000: " + ", ".join(f"{n} {within.get(n, 'none tried')}" for n in SAMPLERS))
    if args.json:
        args.json.write_text(json.dumps({"num": args.num, "guidance": base.guidance, "rows": rows, "within_5pct": within}, indent=1))


if __name__ == "__main__":
    main()
