"""The periodic sample grid: fixed noise and labels, guided as the run's [sample] says, one
labelled row per class shown (up to 10, spread from head to tail)."""

from __future__ import annotations

from pathlib import Path

import torch

from coral_ft.data.batches import to_uint8
from coral_ft.sample.grid import grid_classes, save_class_grid
from coral_ft.sample.samplers import sample


def save_sample_grid(unet, scheduler, data, config, path: Path) -> Path:
    per_class = config.train.sample_grid
    counts = data.counts()
    classes = grid_classes(data.num_classes, counts)
    labels = torch.tensor(classes).repeat_interleave(per_class)  # (rows * per_class,)
    seeds = range(len(labels))  # the same noise at every step: the grids are comparable
    images = to_uint8(sample(unet, scheduler, labels, seeds, config.sample)).permute(0, 2, 3, 1).cpu().numpy()
    return save_class_grid(images, labels.numpy(), data.class_names, path, counts, per_class, classes)
