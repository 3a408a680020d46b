"""Samplers: diffusers' schedulers driven with classifier-free guidance (paper eq. 4).

`SAMPLERS` names each one: `ddpm` (ancestral, every training timestep, the model's own 'fixed
large' variance: the peers' sampler), `ddim`, `dpm++` (DPM-Solver++ 2M), `unipc` and `euler`.
One loop (`denoise`) runs them all and does what each family needs: the initial noise scaled by
`init_noise_sigma` and `scale_model_input` before every model call (both no-ops for the
DDPM/DDIM/DPM-Solver/UniPC family, essential for Euler's sigma space).

`clip_x0` clamps each step's x0 prediction to [-1, 1] by handing the scheduler the noise
prediction that implies the clamped x0; for the DDPM sampler that is exactly diffusers'
`clip_sample=True`. Off (the default), each posterior mean uses the unclipped x0 prediction and
only the final image is clamped, as the peers sample.

Randomness is per sample: sample i of a call with `seeds` draws all its noise from a generator
seeded by seeds[i], so a sample does not depend on how the work is split into batches or
processes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from coral_ft.models.presets import null_label as null_label_of
from coral_ft.sample.guidance import guided_eps


@dataclass(frozen=True)
class SamplerSpec:
    scheduler_cls: type
    default_steps: int | None  # None: every training timestep
    options: dict = field(default_factory=dict)  # from_config keyword arguments
    sigma_space: bool = False  # Euler family: x = x0 + sigma * eps instead of the VP form
    stochastic: bool = False  # draws noise at every step (DDIM: only with eta > 0)


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(DDPMScheduler, None, stochastic=True),
    "ddim": SamplerSpec(DDIMScheduler, 100, {"set_alpha_to_one": False}),
    "dpm++": SamplerSpec(DPMSolverMultistepScheduler, 20, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": SamplerSpec(UniPCMultistepScheduler, 20),
    "euler": SamplerSpec(EulerDiscreteScheduler, 50, sigma_space=True),
}


class SamplingSettings(Protocol):
    """What `sample` reads: an `SampleConfig` (coral_ft.config) or any object with these fields."""

    guidance: float
    sampler: str
    steps: int | None
    eta: float
    clip_x0: bool
    precision: str


def resolved_steps(scheduler, sampler: str, steps: int | None) -> int:
    """The number of denoising steps a sampler takes (its default when `steps` is None)."""
    return steps or SAMPLERS[sampler].default_steps or int(scheduler.config.num_train_timesteps)


def make_sampler_scheduler(scheduler, sampler: str, steps: int | None):
    """A fresh diffusers scheduler for one sampling run (schedulers hold per-run state), built on
    the model's own scheduler config (its betas), with the timesteps set."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    spec = SAMPLERS[sampler]
    options = dict(spec.options)
    if "clip_sample" in inspect.signature(spec.scheduler_cls.__init__).parameters:
        options["clip_sample"] = False  # clipping is `clip_x0`'s job, the same for every sampler
    sched = spec.scheduler_cls.from_config(scheduler.config, **options)
    sched.set_timesteps(resolved_steps(scheduler, sampler, steps))
    return sched


def spec_of(sched) -> SamplerSpec:
    """The family of a scheduler: a SAMPLERS entry, or what its class and config tell."""
    for spec in SAMPLERS.values():
        if type(sched) is spec.scheduler_cls:
            sde = str(getattr(sched.config, "algorithm_type", "")).startswith("sde")
            return SamplerSpec(spec.scheduler_cls, spec.default_steps, spec.options, spec.sigma_space, spec.stochastic or sde)
    # Another diffusers scheduler (a pipeline user's choice): sigma-space schedulers start from
    # noise of standard deviation sigma_max > 1; any scheduler that takes a generator may use it.
    stochastic = "generator" in inspect.signature(sched.step).parameters
    return SamplerSpec(type(sched), None, sigma_space=float(sched.init_noise_sigma) > 1.0, stochastic=stochastic)


def _generators(seeds, device) -> list[torch.Generator]:
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def initial_noise(unet, gens: list[torch.Generator]) -> torch.Tensor:
    """x_T, (B, C, H, W): per-sample CPU noise, identical on every device and for every batch split."""
    size = unet.config.sample_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    shape = (unet.config.in_channels, size, size)
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def clip_x0_eps(sched, eps: torch.Tensor, x: torch.Tensor, t, sigma_space: bool) -> torch.Tensor:
    """The noise prediction whose implied x0 is the clamped x0 prediction.

    VP schedulers: x = sqrt(abar) x0 + sqrt(1 - abar) eps; Euler: x = x0 + sigma eps, with
    x the scheduler's current (unscaled) sample.
    """
    if sigma_space:
        sigma = sched.sigmas[sched.step_index].to(x.device, torch.float64)
        a, b = torch.ones((), dtype=torch.float64, device=x.device), sigma
    else:
        abar = sched.alphas_cumprod.to(x.device, torch.float64)[int(t)]
        a, b = abar.rsqrt(), (1 - abar).sqrt() * abar.rsqrt()  # x0 = a x - b eps
    x64, eps64 = x.double(), eps.double()
    x0 = (a * x64 - b * eps64).clamp(-1, 1)
    return ((a * x64 - x0) / b).to(eps.dtype)


def autocast(device: torch.device, precision: str):
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])


def denoise(unet, sched, labels, seeds, guidance: float, *, eta: float = 0.0,
            clip_x0: bool = False, precision: str = "no", eps_fn=guided_eps,
            callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None) -> torch.Tensor:
    """The reverse process with a ready diffusers scheduler (timesteps set); -> (B, C, H, W) in [-1, 1].

    Shared by `sample` and the diffusers pipeline (`coral_ft.sample.pipeline`), so it takes any
    diffusers scheduler. `callback(i, t, x)` runs after every step; a tensor it returns replaces x.
    """
    spec = spec_of(sched)
    param = next(unet.parameters())
    device = param.device
    labels = None if labels is None else labels.to(device)  # None: an unconditional U-Net
    null = None if labels is None else null_label_of(unet)
    gens = _generators(seeds, "cpu")
    x = (initial_noise(unet, gens) * sched.init_noise_sigma).to(device, torch.float32)
    params = inspect.signature(sched.step).parameters
    step_kwargs = {"eta": eta} if "eta" in params else {}
    if "generator" in params and (spec.stochastic or eta > 0):
        # diffusers draws step noise with randn_tensor, which takes one generator per sample; ours
        # live on the CPU, so it draws there and moves the noise to the device.
        step_kwargs["generator"] = gens
    for i, t in enumerate(sched.timesteps):
        x_in = sched.scale_model_input(x, t)
        with autocast(device, precision):
            eps = eps_fn(unet, x_in.to(param.dtype), t.to(device), labels, guidance, null)
        eps = eps.float()
        if clip_x0:
            eps = clip_x0_eps(sched, eps, x, t, spec.sigma_space)
        x = sched.step(eps, t, x, **step_kwargs).prev_sample
        if callback is not None:
            replaced = callback(i, t, x)
            x = x if replaced is None else replaced
    return x.float().clamp(-1, 1)


@torch.no_grad()
def sample(unet, scheduler, labels: torch.Tensor, seeds, settings: SamplingSettings, *, eps_fn=guided_eps,
           callback=None) -> torch.Tensor:
    """Generate len(labels) images, (B, C, H, W) in [-1, 1], as `settings` say (sampler, steps,
    guidance, eta, clip_x0, precision). `eps_fn` computes the guided prediction (default: paper
    eq. 4 on one doubled-batch forward)."""
    sched = make_sampler_scheduler(scheduler, settings.sampler, settings.steps)
    return denoise(unet, sched, labels, seeds, settings.guidance, eta=settings.eta,
                   clip_x0=settings.clip_x0, precision=settings.precision, eps_fn=eps_fn, callback=callback)
