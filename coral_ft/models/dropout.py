"""Dropout whose masks do not depend on how a batch is split over micro-batches and processes.

torch's dropout draws each mask from the process's random stream in the order the layers run, so
the mask a sample gets depends on the micro-batch and the process it lands in: `--grad-accum 4`
or two GPUs would train on other masks than one process holding the whole batch (the paper's
U-Net has dropout 0.1). `KeyedDropout` instead takes the mask of every element from a
counter-based hash of (the sample's key, the layer, the element's position): a pure function of
its inputs, the same on any split, device or process count. The trainer keys each sample by
(seed, step, its index in the step's global batch, the forward pass within the step).

Without keys (a forward outside the trainer) it is ordinary dropout; in eval mode the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

M32 = 0xFFFFFFFF
# The multiplier of a well-mixing 32-bit integer hash (two multiply-xorshift rounds); below 2^27,
# so every product of a 32-bit value stays inside int64 and the arithmetic is exact everywhere.
MIX = 0x45D9F3B
GOLDEN = 0x9E3779B9  # spreads small integers (layer and pass numbers) over 32 bits
MASK_BITS = 24  # resolution of the keep probability: p is rounded to a multiple of 2^-24


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A bijective mix of int64 values in [0, 2^32) to int64 values in [0, 2^32)."""
    x = ((x >> 16) ^ x) * MIX & M32
    x = ((x >> 16) ^ x) * MIX & M32
    return (x >> 16) ^ x


def salted(keys: torch.Tensor, salt: int) -> torch.Tensor:
    """New independent keys from `keys` for salt 1, 2, ... (a layer, a second forward pass)."""
    return hash32(keys ^ (salt * GOLDEN & M32)) if salt else keys


def sample_keys(step_seed: int, count: int) -> torch.Tensor:
    """(count,) int64 keys of the samples 0..count-1 of one training step."""
    index = torch.arange(count, dtype=torch.int64)
    return hash32(hash32(index) ^ (step_seed & M32))


def keep_mask(keys: torch.Tensor, layer: int, shape: torch.Size, p: float) -> torch.Tensor:
    """(B, *shape) bool: which elements of each keyed sample survive dropout with probability p."""
    n = shape.numel()
    element = hash32(torch.arange(n, dtype=torch.int64, device=keys.device))  # (n,)
    bits = hash32(salted(keys, layer + 1).view(-1, 1) ^ element.view(1, -1))  # (B, n) uniform over 2^32
    threshold = round(p * 2**MASK_BITS)
    return ((bits >> (32 - MASK_BITS)) >= threshold).view(keys.shape[0], *shape)


class DropoutKeys:
    """The keys of the samples in the forward pass under way; shared by every KeyedDropout of a model."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None  # (B,) int64


class KeyedDropout(nn.Module):
    def __init__(self, p: float, layer: int, source: DropoutKeys):
        super().__init__()
        self.p, self.layer, self.source = p, layer, source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keys = self.source.keys
        if keys is None:
            return F.dropout(x, self.p, training=True)
        if keys.shape[0] != x.shape[0]:
            raise ValueError(f"dropout keys for {keys.shape[0]} samples, but a batch of {x.shape[0]}")
        keep = keep_mask(keys.to(x.device), self.layer, x.shape[1:], self.p)
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, layer={self.layer}"


def install_keyed_dropout(model: nn.Module) -> DropoutKeys:
    """Replace every active `nn.Dropout` of `model` by a KeyedDropout (numbered in module order,
    the same on every process); -> the holder the forward pass puts its sample keys into."""
    source = DropoutKeys()
    layer = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout) and child.p > 0:
                setattr(parent, name, KeyedDropout(child.p, layer, source))
                layer += 1
    return source
