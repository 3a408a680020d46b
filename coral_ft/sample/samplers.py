"""Samplers: DDPM ancestral (T steps, 'fixed large' variance, as the peers) and DDIM (K steps).

Both share one signature and return images in [-1, 1]. Randomness is per sample: sample i of a
call with `seeds` draws all its noise from a generator seeded by seeds[i], so a sample does not
depend on how the work is split into batches or processes.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from coral_ft.models.presets import null_label as null_label_of
from coral_ft.sample.guidance import guided_eps

SAMPLERS = ("ddpm", "ddim")


def _generators(seeds, device) -> list[torch.Generator]:
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def make_sampler_scheduler(scheduler, sampler: str, steps: int):
    """A fresh diffusers scheduler for one sampling run (schedulers hold per-run state)."""
    if sampler == "ddpm":
        sched = DDPMScheduler.from_config(scheduler.config)
        sched.set_timesteps(sched.config.num_train_timesteps)
    elif sampler == "ddim":
        sched = DDIMScheduler.from_config(scheduler.config, set_alpha_to_one=False, clip_sample=True)
        sched.set_timesteps(steps)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    return sched


@torch.no_grad()
def sample(
    unet,
    scheduler,
    labels: torch.Tensor,
    seeds,
    guidance: float = 0.0,
    sampler: str = "ddpm",
    steps: int = 100,
    eta: float = 0.0,
    progress: bool = False,
) -> torch.Tensor:
    """Generate len(labels) images, (B, C, H, W) in [-1, 1]."""
    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    labels = labels.to(device)
    null = null_label_of(unet)
    size = unet.config.sample_size
    shape = (len(labels), unet.config.in_channels, size, size)
    gens = _generators(seeds, "cpu")
    # Per-sample CPU noise: identical on every device and for every batch split.
    x = torch.stack([torch.randn(shape[1:], generator=g) for g in gens]).to(device, dtype)
    sched = make_sampler_scheduler(scheduler, sampler, steps)
    step_kwargs = {"eta": eta} if sampler == "ddim" else {}
    timesteps = sched.timesteps
    if progress:
        from tqdm.auto import tqdm

        timesteps = tqdm(timesteps, desc=f"{sampler} sampling", leave=False)
    for t in timesteps:
        eps = guided_eps(unet, x, t.to(device), labels, guidance, null)
        noise_gens = gens if (sampler == "ddpm" or eta > 0) else None
        x = _step(sched, eps, t, x, noise_gens, step_kwargs)
    return x.float().clamp(-1, 1)


def _step(sched, eps, t, x, gens, step_kwargs):
    if gens is None:
        return sched.step(eps, t, x, **step_kwargs).prev_sample
    # diffusers draws the step noise with randn_tensor, which takes one generator per sample;
    # our generators live on the CPU, so draw there and hand the scheduler the CPU list.
    return sched.step(eps, t, x, generator=gens, **step_kwargs).prev_sample
