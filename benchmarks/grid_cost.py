"""What the end-of-run sample grid costs on this machine for a paper recipe's U-Net: the
cifar10-lt recipe's [sample] (1,000-step DDPM, W = 0.6) through coral_ft.train.grid (on a CPU:
DPM-Solver++ 10 steps, one image per class, a row at a time), a freshly initialised `ddpm-cifar`,
with the recipe's sample precision (bf16) and fp32.

    cd benchmarks && python grid_cost.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from coral_ft.config import load_config
from coral_ft.models.presets import build_unet
from coral_ft.train.grid import grid_per_class, grid_settings, save_sample_grid


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipe", default="cifar10-lt")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from diffusers import DDPMScheduler

    cfg = load_config(args.recipe)
    torch.manual_seed(0)
    unet = build_unet(cfg.model.preset, 32, 3, 10).eval()
    m = cfg.model
    sched = DDPMScheduler(num_train_timesteps=m.num_train_timesteps, beta_start=m.beta_start, beta_end=m.beta_end)
    data = SimpleNamespace(num_classes=10, counts=lambda: [5000 // (i + 1) for i in range(10)], class_names=[str(i) for i in range(10)])
    cpu = torch.device("cpu")
    for precision in (cfg.sample.precision, "no"):
        cfg.sample.precision = precision
        drawn = grid_settings(unet, sched, cfg.sample, cpu)
        images = 10 * grid_per_class(unet, cfg.train.sample_grid, cpu)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            save_sample_grid(unet, sched, data, cfg, Path(tmp) / "grid.png")
            seconds = time.perf_counter() - start
        print(f"{args.recipe} grid ({m.preset}, {images} images, {drawn.steps}-step {drawn.sampler}, precision "
              f"{drawn.precision}, W {drawn.guidance}), CPU with {args.threads} thread(s): {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
