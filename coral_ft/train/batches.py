"""Each step's batches: the global batch with all its randomness, then this process's micro-batches.

Every draw that shapes a step (which images, flips, timesteps, noise, dropped labels, dropout keys,
a method's own draws) is made for the whole global batch from generators seeded by (seed, step),
and each process takes its slice. So a resumed run sees exactly the batches an uninterrupted run
sees, and N processes with K micro-batches see together what one process sees in one. With the
data set kept on the GPU (`train.data_on_device`), the noise is drawn there from a generator of its
own and the labels are dropped by the shared stream's next draws: the same distributions as on
the host, other draws, and still the same on every process and on resume.
"""

from __future__ import annotations

import torch

from coral_ft.data.batches import (
    derived_seed,
    global_batch_indices,
    random_hflip,
    resampled_batch_indices,
    step_generator,
    to_model_range,
)
from coral_ft.models.dropout import sample_keys
from coral_ft.objectives import TrainBatch, drop_labels

# Random streams within one step (keys of coral_ft.data.batches.step_generator).
STREAM_SHARED = 0  # flips, timesteps, noise, label dropout of the whole global batch
STREAM_MODEL = 1  # torch's global RNG, per micro-batch and process (no coral-ft model draws from it)
STREAM_PREPARE = 3  # a method's own draws over the whole global batch (objective.prepare)
STREAM_DEVICE_NOISE = 4  # the global batch's noise when it is drawn on a GPU
STREAM_DROPOUT = 5  # the samples' dropout keys (coral_ft.models.dropout)


class StepBatches:
    """Draws step `step`'s global batch and splits it into this process's micro-batches."""

    def __init__(self, config, images: torch.Tensor, labels: torch.Tensor, objective, null_label: int | None,
                 accelerator, noise_on_device: bool):
        # images (N, C, H, W) uint8, on the host or the training device; labels (N,) on the host;
        # noise_on_device: the data lives on the training device (train.data_on_device), the noise is drawn there
        self.config, self.images, self.labels, self.noise_on_device = config, images, labels, noise_on_device
        self.objective, self.null_label, self.accelerator = objective, null_label, accelerator
        self.num_train_timesteps = objective.ctx.schedule.num_train_timesteps
        t = config.train
        self.micro_global = t.batch_size // t.grad_accum  # images per micro-step, all processes
        self.micro_local = self.micro_global // accelerator.num_processes

    def draw(self, step: int) -> TrainBatch:
        """The global batch of `step` and its shared randomness, identical on every process."""
        cfg, B = self.config, self.config.train.batch_size
        seed = cfg.train.seed
        g = step_generator(seed, step, STREAM_SHARED)
        if cfg.data.resample_power == 1.0:  # consecutive slices of seeded epoch shuffles
            idx = global_batch_indices(len(self.labels), B, seed, step)  # (B,)
        else:  # batch resampling: classes drawn by a power of their counts
            idx = resampled_batch_indices(self.labels, cfg.data.resample_power, B, seed, step)
        images = to_model_range(self.images[idx.to(self.images.device)])  # (B, C, H, W), where the data lives
        if cfg.data.hflip:
            images = random_hflip(images, g)
        t = torch.randint(0, self.num_train_timesteps, (B,), generator=g)
        if not self.noise_on_device:
            noise = torch.randn(images.shape, generator=g)
        else:  # drawn where it is used: every process draws the same global noise on its device
            device_g = torch.Generator(device=images.device)
            device_g.manual_seed(derived_seed(seed, step, STREAM_DEVICE_NOISE))
            noise = torch.randn(images.shape, generator=device_g, device=images.device)
        labels = self.labels[idx]
        cond = None if self.null_label is None else drop_labels(labels, cfg.model.p_uncond, self.null_label,
                                                                cfg.model.label_drop, g)
        keys = sample_keys(derived_seed(seed, step, STREAM_DROPOUT), B)  # dropout masks, by position
        batch = TrainBatch(images, labels, cond, t, noise, step_generator(seed, step, STREAM_PREPARE), keys=keys)
        batch.extras = self.objective.prepare(batch)  # a method's own draws, on the whole global batch
        batch.generator = None
        return batch

    def split(self, batch: TrainBatch, step: int) -> list[TrainBatch]:
        """This process's slice of each micro-batch of the global batch, on its device."""
        acc, out = self.accelerator, []
        for micro in range(self.config.train.grad_accum):
            start = micro * self.micro_global + acc.process_index * self.micro_local
            part = slice(start, start + self.micro_local)
            # Dropout draws from the samples' keys; anything else in a model that drew from torch's
            # global RNG would get this (seed, step, micro, rank) stream: exact on resume, not on a new split.
            torch.manual_seed(derived_seed(self.config.train.seed, step, STREAM_MODEL, micro, acc.process_index))
            out.append(moved(batch, acc.device, part))
        return out


def moved(batch: TrainBatch, device, rows: slice = slice(None)) -> TrainBatch:
    """`rows` of a batch's per-sample tensors on `device` (a micro-batch, or the global batch where a
    batch-level term reads its labels and timesteps)."""
    tensors = {k: None if v is None else v[rows].to(device) for k, v in vars(batch).items()
               if k not in ("generator", "extras")}
    return TrainBatch(**tensors, generator=None, extras={k: v[rows].to(device) for k, v in batch.extras.items()})
