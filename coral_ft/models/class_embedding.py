"""Turning an unconditional base into a class-conditional one (paper Algorithm 1 needs labels).

The new class embedding has C + 1 rows, row C being the null label of classifier-free guidance,
and is added to the time embedding as in every diffusers U-Net. It starts at ZERO: the time
embedding plus zero is the time embedding, so before the first step the conditional model
predicts exactly what the base predicts, for every label, and training starts from the base.
"""

from __future__ import annotations

import torch
from torch import nn


def ensure_class_embedding(unet: nn.Module, num_classes: int) -> bool:
    """Give `unet` a zero-initialised (C + 1, D_time) class embedding, in place, when the base has
    none; True when one was added."""
    if getattr(unet.config, "num_class_embeds", None):
        return False
    # The class embedding is added to the output of the time MLP (both diffusers U-Nets).
    time_mlp = unet.time_embedding.linear_2
    table = nn.Embedding(num_classes + 1, time_mlp.out_features, device=time_mlp.weight.device, dtype=time_mlp.weight.dtype)
    with torch.no_grad():
        table.weight.zero_()
    unet.class_embedding = table
    # Saved configs then rebuild the embedding, so the fine-tuned model reloads as a plain one.
    unet.register_to_config(num_class_embeds=num_classes + 1)
    return True
