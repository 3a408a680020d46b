"""Classifier-free guidance, paper eq. 4: eps = (1 + w) * eps(x, y) - w * eps(x, null).

w = 0 is the plain conditional model (diffusers' guidance_scale s corresponds to 1 + w). The
default, `guided_eps` (coral_ft.sample.pipeline), takes both predictions from ONE forward over the
doubled batch; `guided_eps_two_pass` takes them from two, for `benchmarks/sampler_throughput.py`
(which measures one against the other) and for the tests.
"""

from __future__ import annotations

import torch

from coral_ft.sample.pipeline import combine, guided_eps

__all__ = ["guided_eps", "guided_eps_two_pass"]


def guided_eps_two_pass(unet, x: torch.Tensor, t, labels: torch.Tensor, guidance: float, null_label: int) -> torch.Tensor:
    """The same guided prediction from two separate forwards (the reference, not the default)."""
    eps_cond = unet(x, t, class_labels=labels).sample
    if guidance == 0:
        return eps_cond
    eps_null = unet(x, t, class_labels=torch.full_like(labels, null_label)).sample
    return combine(eps_cond, eps_null, guidance)
