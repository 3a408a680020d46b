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
from accelerate.state import AcceleratorState
from step_cost import SHAPES, make_trainer, random_data
from timing import interleaved_medians

from coral_ft.config import SampleConfig
from coral_ft.models.presets import build_unet
from coral_ft.models.schedule import make_scheduler
from coral_ft.sample.labels import sample_seeds
from coral_ft.sample.samplers import SAMPLERS, sample

VARIANTS = {  # name -> (train.mixed_precision, channels_last, compile, compile mode)
    "fp32": ("no", False, False, "default"),
    "bf16": ("bf16", False, False, "default"),
    "bf16+cl": ("bf16", True, False, "default"),
    "bf16+compile": ("bf16", False, True, "default"),
    "bf16+cl+compile": ("bf16", True, True, "default"),
    "bf16+cl+cudagraphs": ("bf16", True, True, "reduce-overhead"),
}
TRAIN_STEPS, SAMPLES, SAMPLE_STEPS = 150_000, 50_000, 1000


def training_times(methods: list[str], variants: list[str], args, data, workdir) -> dict[str, float]:
    """Median seconds per step of every (method, variant), their steps interleaved round-robin so
    that clock ramps and drift hit all alike; compiled variants are warmed through compilation."""
    trainers = {}
    for method in methods:
        for variant in variants:
            precision, channels_last, compiled, mode = VARIANTS[variant]
            sets = [f'train.mixed_precision="{precision}"', f"train.channels_last={str(channels_last).lower()}",
                    f"train.compile={str(compiled).lower()}", f'train.compile_mode="{mode}"']
            AcceleratorState._reset_state(True)  # one process, several precisions: accelerate keeps one state
            trainer = make_trainer(method, args.preset, args.batch_size, data, f"{workdir}/{method}-{variant}", sets)
            for _ in range(args.warmup + (5 if compiled else 0)):
                trainer.train_step()
            trainers[f"{method}/{variant}"] = trainer
    return interleaved_medians({k: t.train_step for k, t in trainers.items()}, args.steps, warmup=0)


def time_sampling(variant: str, samplers: list[str], args, device) -> dict[str, float]:
    """Seconds per guided denoising step for args.sample_batch images, per sampler (one model:
    `ddim` with eta 0 draws no step noise, so ddpm - ddim is the cost of the per-sample noise)."""
    precision, channels_last, compiled, mode = VARIANTS[variant]
    channels, size = SHAPES[args.preset]
    torch.manual_seed(0)
    unet = build_unet(args.preset, size, channels, 10).to(device).eval()
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    net = torch.compile(unet, mode=mode) if compiled else unet
    labels = torch.arange(args.sample_batch) % 10
    seeds = sample_seeds(0, range(args.sample_batch))
    scheduler = make_scheduler()
    out = {}
    for name in samplers:
        settings = SampleConfig(guidance=1.0, sampler=name, steps=args.timed_sample_steps, precision=precision)
        # the first round warms up (and compiles)
        run = interleaved_medians({name: lambda s=settings: sample(net, scheduler, labels, seeds, s)}, args.sample_rounds)
        out[name] = run[name] / args.timed_sample_steps
    return out


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
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
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
