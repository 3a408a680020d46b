"""The diffusion schedule: one diffusers `DDPMScheduler` per model, and the forward process read
from it.

The scheduler a model ships with (`model/scheduler_config.json`) is the single description of its
noise levels: training noises images with it (`ForwardProcess`), the samplers step with it, and
`coral-ft latents` noises real images with it. Timesteps index 0..T-1 (diffusers' convention);
the paper's t in 1..T is that index + 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import DDPMScheduler


def make_scheduler(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DDPMScheduler:
    """The DDPM schedule of paper section 2.1 (linear betas) with the peers' 'fixed large' variance.

    `clip_sample` is off: the peers take each posterior mean from the unclipped x0 prediction and
    clamp only the final image (samplers turn clipping on when `sample.clip_x0` asks for it).
    """
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
        variance_type="fixed_large",
        prediction_type="epsilon",
        clip_sample=False,
    )


def scheduler_for(model_cfg) -> DDPMScheduler:
    """The DDPM scheduler of a `[model]` section (a from-scratch model ships with it)."""
    return make_scheduler(model_cfg.num_train_timesteps, model_cfg.beta_start, model_cfg.beta_end)


class ForwardProcess:
    """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), paper eq. 1, with a scheduler's abar."""

    def __init__(self, scheduler: DDPMScheduler):
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)  # (T,)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """abar_t broadcast to `like`'s shape, in `like`'s dtype and device."""
        a = self.alphas_cumprod.to(like.device)[t.to(like.device)].to(like.dtype)
        return a.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise
