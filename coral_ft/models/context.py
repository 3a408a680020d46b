"""A `UNet2DConditionModel` with a fixed cross-attention input, called like a `UNet2DModel`.

Class-conditional CORAL fine-tuning of a Stable-Diffusion-style U-Net conditions on labels
through the class embedding; the cross-attention still needs `encoder_hidden_states`. This
wrapper holds one fixed (1, L, D) context (zeros, or a supplied embedding such as an encoded
empty prompt) and expands it over the batch, so the trainer, the samplers and guidance call
`unet(x, t, class_labels=...)` on either U-Net type. The bottleneck tap stays on `mid_block`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from coral_ft.errors import ConfigError, UserError

CONTEXT_FILE = "context.safetensors"
CONTEXT_KEY = "context"


class FixedContextUNet(nn.Module):
    def __init__(self, unet: nn.Module, context: torch.Tensor):
        super().__init__()
        self.unet = unet
        self.register_buffer("context", context.reshape(1, *context.shape[-2:]))  # (1, L, D)

    # What the trainer and samplers read from a U-Net: forwarded to the wrapped one.
    @property
    def config(self):
        return self.unet.config

    @property
    def mid_block(self) -> nn.Module:
        return self.unet.mid_block

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, sample: torch.Tensor, timestep, class_labels: torch.Tensor | None = None, return_dict: bool = True):
        context = self.context.expand(sample.shape[0], -1, -1).to(sample.dtype)  # (B, L, D)
        return self.unet(sample, timestep, encoder_hidden_states=context, class_labels=class_labels, return_dict=return_dict)


def inner_unet(unet: nn.Module) -> nn.Module:
    """The diffusers U-Net itself, with or without the context wrapper."""
    return unet.unet if isinstance(unet, FixedContextUNet) else unet


def needs_context(unet: nn.Module) -> bool:
    """A cross-attention U-Net, bare or under LoRA adapters (a peft model)."""
    from diffusers import UNet2DConditionModel
    from peft import PeftModel

    return isinstance(unet.get_base_model() if isinstance(unet, PeftModel) else unet, UNet2DConditionModel)


def read_context(path: str | Path, dim: int) -> torch.Tensor:
    """A supplied context: a safetensors file with a (L, D) or (1, L, D) tensor named 'context'."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"finetune.context file not found: {path}")
    try:
        tensors = load_file(path)
    except Exception as exc:
        raise UserError(f"cannot read the context file {path}: {str(exc).splitlines()[0]}") from None
    if CONTEXT_KEY not in tensors:
        raise ConfigError(f"{path} holds no tensor named '{CONTEXT_KEY}' (found: {', '.join(tensors) or 'none'})")
    ctx = tensors[CONTEXT_KEY].float()
    if ctx.dim() == 3 and ctx.shape[0] == 1:
        ctx = ctx[0]
    if ctx.dim() != 2 or ctx.shape[1] != dim:
        raise ConfigError(f"the context in {path} has shape {tuple(tensors[CONTEXT_KEY].shape)}; expected (L, {dim}) for this base")
    return ctx


def make_context(unet: nn.Module, context_file: str | None, length: int) -> torch.Tensor:
    """(L, D) cross-attention input: the supplied tensor, else zeros."""
    dim = unet.config.cross_attention_dim
    if context_file is not None:
        return read_context(context_file, dim)
    return torch.zeros(length, dim)


def wrap_with_context(unet: nn.Module, context: torch.Tensor) -> FixedContextUNet:
    return FixedContextUNet(unet, context.to(unet.device, unet.dtype))


def save_context(folder: Path, unet: nn.Module) -> None:
    if isinstance(unet, FixedContextUNet):
        save_file({CONTEXT_KEY: unet.context[0].detach().cpu().contiguous()}, Path(folder) / CONTEXT_FILE)


def load_context(folder: Path, unet: nn.Module) -> nn.Module:
    """Wrap a cross-attention U-Net with the context saved beside it (zeros of length 1 if none)."""
    if not needs_context(unet):
        return unet
    path = Path(folder) / CONTEXT_FILE
    ctx = read_context(path, unet.config.cross_attention_dim) if path.is_file() else torch.zeros(1, unet.config.cross_attention_dim)
    return wrap_with_context(unet, ctx)
