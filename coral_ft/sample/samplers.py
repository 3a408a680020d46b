"""Samplers: diffusers' schedulers driven with classifier-free guidance (paper eq. 4).

`SAMPLERS` (coral_ft.sample.registry) names each one: `ddpm` (ancestral, every training timestep,
the model's own 'fixed large' variance: the peers' sampler), `ddim`, `dpm++` (DPM-Solver++ 2M),
`unipc` and `euler`. One loop (`coral_ft.sample.pipeline.denoise`, shared with the diffusers
pipeline) runs them all, with what each family needs and per-sample randomness.

`clip_x0` clamps each step's x0 prediction to [-1, 1] (for the DDPM sampler exactly diffusers'
`clip_sample=True`). Off (the default), each posterior mean uses the unclipped x0 prediction and
only the final image is clamped, as the peers sample.
"""

from __future__ import annotations

import inspect

import torch

from coral_ft.sample.pipeline import combine, denoise, guided_eps
from coral_ft.sample.registry import SAMPLERS


def resolved_steps(scheduler, sampler: str, steps: int | None) -> int:
    """The number of denoising steps a sampler takes (its default when `steps` is None)."""
    return steps or SAMPLERS[sampler].default_steps or int(scheduler.config.num_train_timesteps)


def sampler_options(sampler: str) -> dict:
    """The `from_config` keyword arguments of a sampler's scheduler (the model card shows them too)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    spec = SAMPLERS[sampler]
    options = dict(spec.options)
    if "clip_sample" in inspect.signature(spec.scheduler_cls.__init__).parameters:
        options["clip_sample"] = False  # clipping is `clip_x0`'s job, the same for every sampler
    return options


@torch.no_grad()
def sample(unet, scheduler, labels: torch.Tensor, seeds, settings, *, eps_fn=guided_eps,
           callback=None) -> torch.Tensor:
    """Generate len(labels) images, (B, C, H, W) in [-1, 1], as `settings` (a SampleConfig,
    coral_ft.config: this layer sits below it) say: sampler, steps, guidance, eta, clip_x0, precision.
    `eps_fn` computes the guided prediction (default: paper eq. 4 on one doubled-batch forward).
    The scheduler is a fresh one per call (schedulers hold per-run state), built on the model's own
    scheduler config (its betas)."""
    options = sampler_options(settings.sampler)
    sched = SAMPLERS[settings.sampler].scheduler_cls.from_config(scheduler.config, **options)
    sched.set_timesteps(resolved_steps(scheduler, settings.sampler, settings.steps))
    return denoise(unet, sched, labels, seeds, settings, eps_fn=eps_fn, callback=callback)


def guided_eps_two_pass(unet, x: torch.Tensor, t, labels: torch.Tensor, guidance: float, null_label: int) -> torch.Tensor:
    """Paper eq. 4 from two separate forwards: the reference `guided_eps` (one forward over the
    doubled batch) is measured and tested against (benchmarks/sampler_throughput.py)."""
    eps_cond = unet(x, t, class_labels=labels).sample
    if guidance == 0:
        return eps_cond
    eps_null = unet(x, t, class_labels=torch.full_like(labels, null_label)).sample
    return combine(eps_cond, eps_null, guidance)
