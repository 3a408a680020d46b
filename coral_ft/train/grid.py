"""The periodic sample grid: fixed noise and labels, guided, one row per class shown."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from coral_ft.sample.samplers import sample

MAX_GRID_CLASSES = 10  # with 100 or 1000 classes, show 10 spread from head to tail


def grid_labels(num_classes: int, per_class: int) -> torch.Tensor:
    shown = torch.linspace(0, num_classes - 1, min(num_classes, MAX_GRID_CLASSES)).round().long()
    return shown.repeat_interleave(per_class)  # (rows * per_class,), one row per class


def save_sample_grid(unet, scheduler, data, config, path: Path) -> Path:
    per_class = config.train.sample_grid
    labels = grid_labels(data.num_classes, per_class)
    seeds = range(len(labels))  # the same noise at every step: the grids are comparable
    s = config.sample
    images = sample(unet, scheduler, labels, seeds, s.guidance, s.sampler, s.steps, s.eta)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.add(1).div(2), path, nrow=per_class)
    return path
