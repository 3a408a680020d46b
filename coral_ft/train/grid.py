"""The periodic sample grid: fixed noise and labels, guided as the run's [sample] says, one
labelled row per class shown (up to 10, spread from head to tail)."""

from __future__ import annotations

from pathlib import Path

import torch

from coral_ft.data.batches import to_uint8
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.grid import MAX_GRID_CLASSES, grid_classes, save_class_grid
from coral_ft.sample.samplers import sample


def save_sample_grid(unet, scheduler, data, config, path: Path) -> Path:
    per_class = config.train.sample_grid
    if num_classes_of(unet) is None:  # an unconditional model: rows of samples, no classes
        rows = min(data.num_classes, MAX_GRID_CLASSES)
        images = to_uint8(sample(unet, scheduler, None, range(rows * per_class), config.sample))
        labels = torch.arange(rows).repeat_interleave(per_class)
        names = [f"unconditional {i + 1}" for i in range(rows)]
        return save_class_grid(images.permute(0, 2, 3, 1).cpu().numpy(), labels.numpy(), names, path, None, per_class)
    counts = data.counts()
    classes = grid_classes(data.num_classes, counts)
    labels = torch.tensor(classes).repeat_interleave(per_class)  # (rows * per_class,)
    seeds = range(len(labels))  # the same noise at every step: the grids are comparable
    images = to_uint8(sample(unet, scheduler, labels, seeds, config.sample)).permute(0, 2, 3, 1).cpu().numpy()
    return save_class_grid(images, labels.numpy(), data.class_names, path, counts, per_class, classes)
