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
    g = torch.Generator()
    g.manual_seed(derived_seed(seed, step, *stream))
    return g


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(derived_seed(seed, epoch, EPOCH_STREAM))
    return torch.randperm(num_items, generator=g)


EPOCH_STREAM = 2**31 - 1  # keeps data-order seeds apart from per-step seeds


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


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image with probability 1/2; the coin flips come from the CPU `generator`."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
