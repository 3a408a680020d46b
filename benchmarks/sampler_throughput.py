"""Guided sampling throughput: one doubled-batch forward per step vs two forwards (target >= 1.3x).

Paper eq. 4 needs eps(x, y) and eps(x, null) at every step. `guided_eps` gets both from one
forward over the doubled batch; `guided_eps_two_pass` makes two forwards. Both run the same
DDIM sampler on the same labels and seeds, interleaved (doubled, two-pass, doubled, ...) so that
machine noise hits both alike; the medians of the repeats are compared.

    python benchmarks/sampler_throughput.py --preset tiny --batch-size 16 --steps 10
    python benchmarks/sampler_throughput.py --preset ddpm-cifar --batch-size 64 --device cuda
    python benchmarks/sampler_throughput.py --profile   # where the time of one guided step goes
"""

from __future__ import annotations

import argparse

import torch
from common import SHAPES, interleaved_medians

from coral_ft.config import SampleConfig
from coral_ft.models.presets import build_unet, null_label
from coral_ft.models.schedule import make_scheduler
from coral_ft.sample.pipeline import guided_eps
from coral_ft.sample.samplers import guided_eps_two_pass, sample

MODES = {"doubled": guided_eps, "two-pass": guided_eps_two_pass}


def sampling_run(unet, scheduler, labels, eps_fn, steps: int):
    """One guided DDIM sampling call, as a function to time."""
    settings = SampleConfig(guidance=1.0, sampler="ddim", steps=steps)
    return lambda: sample(unet, scheduler, labels, range(len(labels)), settings, eps_fn=eps_fn)


def profile_step(unet, labels, device: str) -> None:
    """Top operators of one guided prediction, each way."""
    channels, size = unet.config.in_channels, unet.config.sample_size
    x, t = torch.randn(len(labels), channels, size, size, device=device), torch.tensor(500, device=device)
    for name, fn in MODES.items():
        with torch.no_grad(), torch.profiler.profile() as prof:
            fn(unet, x, t, labels, 1.0, null_label(unet))
        print(f"--- {name}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=16, help="samples per call (the doubled batch is 2x)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps per sampling call")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per mode")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also print an operator profile of one step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    channels, size = SHAPES[args.preset]
    torch.manual_seed(0)
    unet = build_unet(args.preset, size, channels, 10).to(args.device).eval()
    scheduler = make_scheduler()
    labels = torch.arange(args.batch_size) % 10
    for eps_fn in MODES.values():  # warm-up: allocator, kernels, lazy imports
        sampling_run(unet, scheduler, labels, eps_fn, 2)()
    med = interleaved_medians({name: sampling_run(unet, scheduler, labels, fn, args.steps) for name, fn in MODES.items()},
                              args.repeats, warmup=0)
    rate = {name: args.batch_size / seconds for name, seconds in med.items()}
    print(f"preset {args.preset} {channels}x{size}x{size}, batch {args.batch_size}, DDIM {args.steps} steps, "
          f"device {args.device}, threads {torch.get_num_threads()}, {args.repeats} repeats")  # fmt: skip
    for name in MODES:
        print(f"  {name:<9} {rate[name]:8.2f} images/s   (median {med[name]:.3f} s per call)")
    print(f"  speed-up of the doubled batch: {rate['doubled'] / rate['two-pass']:.2f}x")
    if args.profile:
        profile_step(unet, labels.to(args.device), args.device)


if __name__ == "__main__":
    main()
