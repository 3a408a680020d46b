"""The denoiser: a diffusers U-Net, a tap on its bottleneck, and the CORAL projection head.

One `nn.Module` owns all three, so one forward returns the noise prediction and the embedding,
and accelerate/DDP wraps the whole thing as one module (a hook outside the wrapped module would
miss gradients synchronisation). The hook is on `unet.mid_block`, whose output is the lowest-
resolution representation (ResBlock, attention, ResBlock) the paper regularises.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from coral_ft.models.dropout import install_keyed_dropout, salted
from coral_ft.models.head import ProjectionHead


class DenoiserOutput(NamedTuple):
    eps: torch.Tensor  # (B, C, H, W) predicted noise
    bottleneck: torch.Tensor  # (B, C_mid, h, w) mid-block output
    embedding: torch.Tensor | None  # (B, D) L2-normalised head output, None without a head


class Denoiser(nn.Module):
    def __init__(self, unet: nn.Module, head: nn.Module | None = None):
        # `unet` is called as unet(x, t, class_labels=...).sample: a UNet2DModel, or a
        # cross-attention U-Net wrapped with its fixed context (coral_ft.models.context).
        super().__init__()
        self.unet = unet
        self.head = head
        self._captured: torch.Tensor | None = None
        unet.mid_block.register_forward_hook(self._capture)
        self._dropout = install_keyed_dropout(unet)

    def _capture(self, module, inputs, output) -> None:
        self._captured = output[0] if isinstance(output, tuple) else output

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None,
                dropout_keys: torch.Tensor | None = None) -> DenoiserOutput:
        """dropout_keys (B,) int64: each sample's dropout masks as a function of its key
        (coral_ft.models.dropout); None: torch's own dropout."""
        self._dropout.keys = dropout_keys
        try:
            eps = self.unet(x_t, t, class_labels=class_labels).sample
        finally:
            self._dropout.keys = None
        h, self._captured = self._captured, None
        z = self.head(h) if self.head is not None else None
        return DenoiserOutput(eps, h, z)


def bottleneck_shape(unet: nn.Module) -> tuple[int, int]:
    """(channels, spatial size) of the mid-block output for this U-Net's sample size."""
    channels = unet.config.block_out_channels[-1]
    size = unet.config.sample_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return channels, size // 2 ** (len(unet.config.block_out_channels) - 1)


def build_head(unet: nn.Module, dim: int = 128, pooling: str = "avg") -> ProjectionHead:
    channels, spatial = bottleneck_shape(unet)
    return ProjectionHead(channels, dim, pooling, spatial)


class KeyedForward:
    """A denoiser (the module being trained, possibly wrapped and compiled) with one batch's
    dropout keys bound, as an objective calls it: forward n of the call draws the masks of pass n,
    so a second forward (CBDM's, ambient's) gets masks of its own, and the same call made twice
    (the cached-gradient path of `--grad-accum`) gets the same masks both times."""

    def __init__(self, model, keys: torch.Tensor | None):
        self.model, self.keys, self.passes = model, keys, 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None) -> DenoiserOutput:
        keys = None if self.keys is None else salted(self.keys, self.passes)
        self.passes += 1
        return self.model(x_t, t, class_labels, dropout_keys=keys)
