"""The periodic sample grid: fixed noise and labels, guided as the run's [sample] says, one
labelled row per class shown (up to 10, spread from head to tail).

A grid is a look at progress, so it costs seconds, not a sampling run's minutes:
- its sampler is the run's when that takes at most `GRID_MAX_STEPS` steps (the digits and Fashion
  recipes' DPM-Solver++), else DPM-Solver++ with `GRID_STEPS` steps (the paper recipes' 1,000-step
  DDPM: FID 2.0x that of 1000-step DDPM on the digits, docs/sampling.md);
- on a CPU, a U-Net over `CPU_GRID_MAX_PARAMS` parameters (the paper's 35.7M) draws one image per
  class, a row at a time (29 s in bf16, 43 s in fp32 on one thread: docs/measurements/cpu/grid_cost.txt),
  and bf16 only where the CPU computes it natively;
- `train.sample_grid = 0` draws none; `should_stop()` is asked after every denoising step (a stop
  signal leaves the grid unfinished, `GridStopped`).
Grids draw from the EMA copy with generators of their own: training's weights and random streams
are the same with or without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from coral_ft.data.batches import to_uint8
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.grid import MAX_GRID_CLASSES, grid_classes, save_class_grid
from coral_ft.sample.samplers import resolved_steps, sample

GRID_MAX_STEPS = 20  # the run's sampler draws the grid up to this many steps
GRID_SAMPLER, GRID_STEPS = "dpm++", 10  # else this one
CPU_GRID_MAX_PARAMS = 10_000_000  # on a CPU, a larger U-Net draws one image per class


class GridStopped(Exception):
    """A stop was requested while a grid was drawn: the grid is left unfinished."""


def grid_settings(unet, scheduler, settings, device: torch.device):
    """The [sample] settings a grid is drawn with: few steps, and on a CPU a precision it computes fast."""
    if resolved_steps(scheduler, settings.sampler, settings.steps) > GRID_MAX_STEPS:
        settings = replace(settings, sampler=GRID_SAMPLER, steps=GRID_STEPS, eta=0.0)
    if device.type == "cpu" and settings.precision != "no":
        from coral_ft.devices import cpu_bf16

        if settings.precision != "bf16" or not cpu_bf16():
            settings = replace(settings, precision="no")
    return settings


def large_on_cpu(unet, device: torch.device) -> bool:
    return device.type == "cpu" and sum(p.numel() for p in unet.parameters()) > CPU_GRID_MAX_PARAMS


def grid_per_class(unet, per_class: int, device: torch.device) -> int:
    return min(per_class, 1) if large_on_cpu(unet, device) else per_class


def save_sample_grid(unet, scheduler, data, config, path: Path, should_stop: Callable[[], bool] = lambda: False) -> Path | None:
    """Draw and save the grid; None when `config.train.sample_grid` is 0 (no grid)."""
    device = next(unet.parameters()).device
    per_class = grid_per_class(unet, config.train.sample_grid, device)
    if per_class == 0:
        return None
    settings = grid_settings(unet, scheduler, config.sample, device)
    # A large U-Net on a CPU draws a row at a time: a stop is then asked for every second or so
    chunk = per_class if large_on_cpu(unet, device) else None
    conditional = num_classes_of(unet) is not None  # else rows of samples, no classes
    counts = data.counts() if conditional else None
    classes = grid_classes(data.num_classes, counts) if conditional else list(range(min(data.num_classes, MAX_GRID_CLASSES)))
    names = data.class_names if conditional else [f"unconditional {i + 1}" for i in classes]
    labels = torch.tensor(classes).repeat_interleave(per_class)  # (rows * per_class,)
    images = _draw(unet, scheduler, labels if conditional else None, len(labels), settings, should_stop, chunk)
    return save_class_grid(images, labels.numpy(), names, path, counts, per_class, classes)


def _draw(unet, scheduler, labels, n: int, settings, should_stop, chunk: int | None = None):
    """(n, H, W, C) uint8, in one batch (as every grid before: a split changes the last bits) or in
    batches of `chunk`; sample i draws from seed i, the same noise at every step, so the grids are
    comparable."""

    def check(i, t, x):
        if should_stop():
            raise GridStopped

    chunk = chunk or n
    parts = [sample(unet, scheduler, None if labels is None else labels[i:i + chunk], range(i, min(i + chunk, n)),
                    settings, callback=check) for i in range(0, n, chunk)]
    return to_uint8(torch.cat(parts)).permute(0, 2, 3, 1).cpu().numpy()
