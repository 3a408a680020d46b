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
    *,
    eps_fn=guided_eps,
) -> torch.Tensor:
    """Generate len(labels) images, (B, C, H, W) in [-1, 1].

    `eps_fn` computes the guided prediction (default: paper eq. 4 on one doubled-batch forward).
    """
    sched = make_sampler_scheduler(scheduler, sampler, steps)
    step_kwargs = {"eta": eta} if sampler == "ddim" else {}
    stochastic = sampler == "ddpm" or eta > 0
    return denoise(unet, sched, labels, seeds, guidance, step_kwargs, stochastic, progress, eps_fn)


def initial_noise(unet, gens: list[torch.Generator]) -> torch.Tensor:
    """x_T, (B, C, H, W): per-sample CPU noise, identical on every device and for every batch split."""
    size = unet.config.sample_size
    shape = (unet.config.in_channels, size, size)
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def denoise(unet, sched, labels, seeds, guidance, step_kwargs, stochastic, progress=False, eps_fn=guided_eps):
    """The reverse process with a ready diffusers scheduler (timesteps set); -> (B, C, H, W) in [-1, 1].

    Shared by `sample` and the diffusers pipeline (`coral_ft.sample.pipeline`).
    """
    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    labels = labels.to(device)
    null = null_label_of(unet)
    gens = _generators(seeds, "cpu")
    x = initial_noise(unet, gens).to(device, dtype)
    timesteps = sched.timesteps
    if progress:
        from tqdm.auto import tqdm

        timesteps = tqdm(timesteps, desc="sampling", leave=False)
    for t in timesteps:
        eps = eps_fn(unet, x, t.to(device), labels, guidance, null)
        x = _step(sched, eps, t, x, gens if stochastic else None, step_kwargs)
    return x.float().clamp(-1, 1)


def _step(sched, eps, t, x, gens, step_kwargs):
    if gens is None:
        return sched.step(eps, t, x, **step_kwargs).prev_sample
    # diffusers draws the step noise with randn_tensor, which takes one generator per sample;
    # our generators live on the CPU, so draw there and hand the scheduler the CPU list.
    return sched.step(eps, t, x, generator=gens, **step_kwargs).prev_sample
