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

from coral_ft.errors import ConfigError
from coral_ft.models.dropout import install_keyed_dropout, salted
from coral_ft.models.head import ProjectionHead

NULL_PASS_SALT = 1 << 20  # the salt of coral-null's second pass: apart from KeyedForward's pass numbers


class DenoiserOutput(NamedTuple):
    eps: torch.Tensor  # (B, C, H, W) predicted noise
    bottleneck: torch.Tensor  # (B, C_mid, h, w) mid-block output
    embedding: torch.Tensor | None  # (B, D) L2-normalised head output, None without a head


def mid_block_of(unet: nn.Module) -> nn.Module:
    """The bottleneck block of a diffusers U-Net: bare, peft-wrapped (peft forwards the attribute),
    with a fixed context (coral_ft.models.context) or inside DDP/compile (`.module`, `._orig_mod`)."""
    for candidate in (unet, getattr(unet, "module", None), getattr(unet, "_orig_mod", None)):
        block = getattr(candidate, "mid_block", None) if candidate is not None else None
        if block is not None:
            return block
    raise ValueError(f"{type(unet).__name__} has no mid_block: CORAL regularises a diffusers U-Net's bottleneck "
                     "(UNet2DModel, UNet2DConditionModel, or one wrapped by peft)")


class BottleneckTap:
    """A forward hook on a U-Net's mid block that keeps the block's latest output: the bottleneck
    features of the last forward, for the projection head (the Denoiser's and CoralRegularizer's)."""

    def __init__(self, unet: nn.Module):
        self.output: torch.Tensor | None = None
        self.handle = mid_block_of(unet).register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        self.output = output[0] if isinstance(output, tuple) else output

    def take(self) -> torch.Tensor | None:
        """The captured bottleneck (B, C_mid, h, w), forgotten here (no reference outlives the step)."""
        h, self.output = self.output, None
        return h

    def remove(self) -> None:
        self.handle.remove()
        self.output = None


class Denoiser(nn.Module):
    def __init__(self, unet: nn.Module, head: nn.Module | None = None):
        # `unet` is called as unet(x, t, class_labels=...).sample: a UNet2DModel, or a
        # cross-attention U-Net wrapped with its fixed context (coral_ft.models.context).
        super().__init__()
        self.unet = unet
        self.head = head
        self._tap = BottleneckTap(unet)
        self._dropout = install_keyed_dropout(unet)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None,
                dropout_keys: torch.Tensor | None = None, null_features: bool = False) -> DenoiserOutput:
        """dropout_keys (B,) int64: each sample's dropout masks as a function of its key
        (coral_ft.models.dropout); None: torch's own dropout. null_features: the head reads the
        bottleneck of a second, null-label pass of the same x_t (`null_bottleneck`) instead of this
        pass's, so nothing the head sees depends on the labels."""
        self._dropout.keys = dropout_keys
        try:
            eps = self.unet(x_t, t, class_labels=class_labels).sample
            h = seen = self._tap.take()
            if null_features:  # the null pass draws masks of its own, still a function of the keys
                self._dropout.keys = None if dropout_keys is None else salted(dropout_keys, NULL_PASS_SALT)
                seen = null_bottleneck(self.unet, x_t, t)
            self._tap.output = None
        finally:
            self._dropout.keys = None
        z = self.head(seen) if self.head is not None else None
        return DenoiserOutput(eps, h, z)


def null_bottleneck(unet: nn.Module, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, C_mid, h, w): the mid-block output of `unet` on x_t with every label null, from the
    down path and the mid block only (the up path is not needed: about half a forward).

    The null label's embedding row enters as a constant (detached): a loss on these features
    can reach the weights that read the image, never the label table. A `UNet2DModel`, bare or
    under LoRA adapters; the steps are UNet2DModel.forward's up to its mid block (a test holds
    them equal to the full forward's bottleneck)."""
    core = unet.get_base_model() if hasattr(unet, "get_base_model") else unet  # a peft model: the adapted U-Net
    if type(core).__name__ != "UNet2DModel" or core.mid_block is None or core.class_embedding is None:
        raise ConfigError("objective.coral.features = null needs a class-conditional diffusers UNet2DModel")
    if any(hasattr(block, "skip_conv") for block in core.down_blocks):
        raise ConfigError("objective.coral.features = null does not support skip-connection down blocks")
    t = t * torch.ones(x_t.shape[0], dtype=t.dtype, device=t.device)  # (B,)
    emb = core.time_embedding(core.time_proj(t).to(dtype=core.dtype))  # (B, D_t)
    null = torch.full_like(t, core.config.num_class_embeds - 1)
    emb = emb + core.class_embedding(null).detach().to(emb.dtype)
    h = core.conv_in(x_t)
    for block in core.down_blocks:
        h, _ = block(hidden_states=h, temb=emb)
    return core.mid_block(h, emb)


def build_head(unet: nn.Module, dim: int = 128, pooling: str = "avg") -> ProjectionHead:
    """A head for the mid-block output: the last level's channels, the sample size halved per level below the first."""
    channels, size = unet.config.block_out_channels, unet.config.sample_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return ProjectionHead(channels[-1], dim, pooling, size // 2 ** (len(channels) - 1))


class KeyedForward:
    """A denoiser (the module being trained, possibly wrapped and compiled) with one batch's
    dropout keys bound, as an objective calls it: forward n of the call draws the masks of pass n,
    so a second forward (CBDM's, ambient's) gets masks of its own, and the same call made twice
    (the cached-gradient path of `--grad-accum`) gets the same masks both times."""

    def __init__(self, model, keys: torch.Tensor | None):
        self.model, self.keys, self.passes = model, keys, 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None,
                 null_features: bool = False) -> DenoiserOutput:
        keys = None if self.keys is None else salted(self.keys, self.passes)
        self.passes += 1
        return self.model(x_t, t, class_labels, dropout_keys=keys, null_features=null_features)
