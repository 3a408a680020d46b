"""From uint8 images in memory to training batches.

Randomness here is a pure function of (seed, step): the order of the data in each epoch, and
each flip, come from generators seeded by those numbers. A resumed run therefore sees exactly the
batches an uninterrupted run sees, and N processes see together what one process sees, with no
sampler state to save.
"""

from __future__ import annotations

import numpy as np
import torch


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def derived_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def step_generator(seed: int, step: int, *stream: int) -> torch.Generator:
    """A CPU generator for one training step; `stream` keys separate independent uses in a step."""
    return torch.Generator().manual_seed(derived_seed(seed, step, *stream))


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num_items, generator=step_generator(seed, epoch, EPOCH_STREAM))


EPOCH_STREAM = 2**31 - 1  # keeps data-order seeds apart from per-step seeds
RESAMPLE_STREAM = 2**31 - 2  # the draws of class-resampled batches


def global_batch_indices(num_items: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the global batch number `step`: consecutive slices of seeded epoch shuffles."""
    start = step * batch_size
    out, filled = [], 0
    while filled < batch_size:
        epoch, offset = divmod(start + filled, num_items)
        take = min(batch_size - filled, num_items - offset)
        out.append(epoch_permutation(num_items, seed, epoch)[offset : offset + take])
        filled += take
    return torch.cat(out)


def resampled_batch_indices(labels: torch.Tensor, power: float, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of global batch `step` drawn with replacement, class c with probability proportional
    to n_c^power (1: as the data is, 0: every class alike, 0.5: square-root sampling), then an
    image of that class uniformly: batch resampling, a pure function of (seed, step) like the
    epoch order it replaces."""
    counts = torch.bincount(labels)  # (C,)
    weights = torch.where(counts > 0, counts.double() ** power, torch.zeros((), dtype=torch.float64))
    g = step_generator(seed, step, RESAMPLE_STREAM)
    classes = torch.multinomial(weights / weights.sum(), batch_size, replacement=True, generator=g)  # (B,)
    by_class = torch.argsort(labels, stable=True)  # the images of class 0, then class 1, ...
    starts = torch.cumsum(counts, 0) - counts
    within = (torch.rand(batch_size, generator=g, dtype=torch.float64) * counts[classes]).long()
    return by_class[starts[classes] + within]


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image with probability 1/2; the coin flips come from the CPU `generator`."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
