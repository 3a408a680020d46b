"""The GPU fast path, measured: training step time and guided sampling throughput of `ddpm-cifar`
for each of fp32 / bf16 / + channels-last / + torch.compile, with the hours they project.

Targets (one H100): a CORAL training step <= 40 ms at batch 128 (150k steps in under 1.7 h), and
50k guided samples with the 1000-step DDPM sampler in under an hour.

    python benchmarks/speed.py                                   # GPU: the whole table (about 8 minutes)
    python benchmarks/speed.py --preset tiny --batch-size 16 --sample-batch 32 --steps 3 --variants fp32,bf16   # CPU check
    python benchmarks/speed.py --part sample                     # sampling only

Training variants build a Trainer per variant on random CIFAR-shaped data and time `train_step`
between device synchronisations (medians; compiled variants are warmed up through compilation).
Sampling variants time denoising steps of the guided DDPM sampler (one doubled-batch forward per
step) at a large batch and scale to 1000 steps and 50k samples; the fast samplers' cost follows
from their step counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
from common import SHAPES, VARIANTS, device_name, random_data, time_sampling, training_times

from coral_ft.sample.samplers import SAMPLERS

TRAIN_STEPS, SAMPLES, SAMPLE_STEPS = 150_000, 50_000, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ddpm-cifar", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=128, help="training batch")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", default="ddpm,coral")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sample-batch", type=int, default=2048, help="images per sampling batch (the forward sees twice as many)")
    parser.add_argument("--timed-sample-steps", type=int, default=10)
    parser.add_argument("--sample-rounds", type=int, default=3)
    parser.add_argument("--part", choices=("all", "train", "sample"), default="all")
    parser.add_argument("--samplers", default="ddpm", help="samplers timed per sampling variant (ddim: without step noise)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as training and sampling set them
    variants = args.variants.split(",")
    where = device_name()
    print(f"{args.preset} on {where}, torch {torch.__version__}")
    figures: dict = {"device": where, "preset": args.preset, "train": {}, "sample": {}}
    if args.part in ("all", "train"):
        data = random_data(args.preset)
        with tempfile.TemporaryDirectory() as workdir:
            figures["train"] = training_times(args.methods.split(","), variants, args, data, workdir)
        for key, s in figures["train"].items():
            method, variant = key.split("/")
            print(f"train {method:5s} {variant:16s} batch {args.batch_size}: {s * 1000:8.1f} ms/step, "
                  f"{TRAIN_STEPS} steps in {s * TRAIN_STEPS / 3600:5.2f} h", flush=True)
    if args.part in ("all", "sample"):
        for variant in variants:
            for sampler, per_step in time_sampling(variant, args.samplers.split(","), args, device).items():
                images_per_s = args.sample_batch / (per_step * SAMPLE_STEPS)
                figures["sample"][f"{variant}/{sampler}"] = {"seconds_per_step": per_step,
                                                             "images_per_s_1000_steps": images_per_s}
                fast = ", ".join(f"{name} {spec.default_steps} steps {SAMPLES * per_step * spec.default_steps / args.sample_batch / 60:.1f} min"
                                 for name, spec in SAMPLERS.items() if spec.default_steps)
                print(f"sample {variant:16s} {sampler:5s} batch {args.sample_batch}: {per_step * 1000:7.1f} ms/step, "
                      f"{images_per_s:7.1f} images/s at {SAMPLE_STEPS} steps, {SAMPLES} in "
                      f"{SAMPLES / images_per_s / 3600:5.2f} h; {SAMPLES} with {fast}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
