"""Classifier-free guidance, paper eq. 4: eps = (1 + w) * eps(x, y) - w * eps(x, null).

w = 0 is the plain conditional model (diffusers' guidance_scale s corresponds to 1 + w). The
conditional and null predictions come from ONE forward over the doubled batch: one large batch
uses the hardware better than two small ones (`benchmarks/sampler_throughput.py` measures it
against `guided_eps_two_pass`, which exists for that comparison and for the tests).
"""

from __future__ import annotations

import torch


def _combine(eps_cond: torch.Tensor, eps_null: torch.Tensor, guidance: float) -> torch.Tensor:
    """Paper eq. 4 on the two predictions, each (B, C, H, W)."""
    return (1 + guidance) * eps_cond - guidance * eps_null


def guided_eps(unet, x: torch.Tensor, t, labels: torch.Tensor | None, guidance: float, null_label: int | None) -> torch.Tensor:
    """Guided noise prediction for x: (B, C, H, W) at timestep t with class labels (B,); an
    unconditional U-Net (labels None) has nothing to guide towards."""
    if labels is None:
        return unet(x, t).sample
    if guidance == 0:
        return unet(x, t, class_labels=labels).sample
    null = torch.full_like(labels, null_label)
    eps = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample  # (2B, C, H, W)
    eps_cond, eps_null = eps.chunk(2)  # (B, C, H, W) each
    return _combine(eps_cond, eps_null, guidance)


def guided_eps_two_pass(unet, x: torch.Tensor, t, labels: torch.Tensor, guidance: float, null_label: int) -> torch.Tensor:
    """The same guided prediction from two separate forwards (the reference, not the default)."""
    eps_cond = unet(x, t, class_labels=labels).sample
    if guidance == 0:
        return eps_cond
    eps_null = unet(x, t, class_labels=torch.full_like(labels, null_label)).sample
    return _combine(eps_cond, eps_null, guidance)
