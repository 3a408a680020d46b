"""Guided class-conditional sampling (paper eq. 4) and a diffusers pipeline built on it.

This file stands on torch, numpy and diffusers alone: `CoralPipeline.save_pretrained` copies it
into the pipeline folder as `pipeline.py`, so `DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)` loads a shared folder where coral-ft is not installed. coral-ft's own
sampling (`coral_ft.sample.samplers`) runs the same `denoise` loop, so the two never drift apart.

diffusers' `DDPMPipeline` cannot pass class labels. `CoralPipeline` takes them (indices or class
names, or `batch_size` images cycling through the classes), and the guidance weight either as the
paper's w (`guidance`, w = 0: the plain conditional model) or as diffusers' `guidance_scale`
(= 1 + w):

    pipe = CoralPipeline.from_coral("runs/cifar10-lt")            # any coral-ft run or model folder (needs coral-ft)
    images = pipe(class_labels=[0, 9], guidance=0.6, num_inference_steps=1000, seed=0).images
    pipe.save_pretrained("exported/c10lt-pipeline")               # model_index.json, unet/, scheduler/, pipeline.py
    pipe = DiffusionPipeline.from_pretrained("exported/c10lt-pipeline", trust_remote_code=True)

The registered scheduler decides the sampler, from any family: the model's DDPMScheduler is the
ancestral sampler of the peers; `pipe.scheduler = DPMSolverMultistepScheduler.from_config(...)`
(or DDIM, UniPC, Euler, ...) gives another, with the initial noise and the model input scaled as
each family needs. Randomness is per sample: sample i draws all its noise from a generator seeded
by its own seed, so a sample does not depend on the batch it is in; with `seed=S`, sample i uses
the seed `coral-ft sample --sample-seed S` gives it, so the pipeline reproduces the CLI's samples.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

OUTPUT_TYPES = ("pil", "np", "pt")
PIPELINE_FILE = "pipeline.py"
NOISE_STREAM = 0  # the SeedSequence word of the per-sample noise seeds (coral_ft.sample.labels)


# -- guidance and the reverse process -------------------------------------------------------------
def combine(eps_cond: torch.Tensor, eps_null: torch.Tensor, guidance: float) -> torch.Tensor:
    """Paper eq. 4 on the two predictions, each (B, C, H, W): (1 + w) eps(x, y) - w eps(x, null)."""
    return (1 + guidance) * eps_cond - guidance * eps_null


def guided_eps(unet, x: torch.Tensor, t, labels: torch.Tensor | None, guidance: float, null_label: int | None) -> torch.Tensor:
    """Guided noise prediction for x: (B, C, H, W) at timestep t with class labels (B,), from ONE
    forward over the doubled batch (one large batch uses the hardware better than two small ones).
    An unconditional U-Net (labels None) has nothing to guide towards."""
    if labels is None:
        return unet(x, t).sample
    if guidance == 0:
        return unet(x, t, class_labels=labels).sample
    null = torch.full_like(labels, null_label)
    eps = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample  # (2B, C, H, W)
    eps_cond, eps_null = eps.chunk(2)  # (B, C, H, W) each
    return combine(eps_cond, eps_null, guidance)


def sample_seeds(seed: int, indices) -> list[int]:
    """The noise seed of each sample index of a run with seed `seed` (63-bit, hashed from both
    with NumPy's SeedSequence, as coral-ft derives every seed)."""
    return [int(np.random.SeedSequence([int(seed), NOISE_STREAM, int(i)]).generate_state(1, np.uint64)[0]
                >> np.uint64(1)) for i in indices]


def null_label_of(unet) -> int | None:
    """The null label (the last class-embedding row), None for an unconditional U-Net."""
    rows = getattr(unet.config, "num_class_embeds", None)
    return rows - 1 if rows else None


def sigma_space(sched) -> bool:
    """Euler-family schedulers start from noise of standard deviation sigma_max > 1 and take x = x0 + sigma eps."""
    return float(sched.init_noise_sigma) > 1.0


def initial_noise(unet, gens: list[torch.Generator]) -> torch.Tensor:
    """x_T, (B, C, H, W): per-sample CPU noise, identical on every device and for every batch split."""
    size = unet.config.sample_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return torch.stack([torch.randn((unet.config.in_channels, size, size), generator=g) for g in gens])


def clip_x0_eps(sched, eps: torch.Tensor, x: torch.Tensor, t) -> torch.Tensor:
    """The noise prediction whose implied x0 is the clamped x0 prediction.

    VP schedulers: x = sqrt(abar) x0 + sqrt(1 - abar) eps; Euler: x = x0 + sigma eps, with x the
    scheduler's current (unscaled) sample. For the DDPM sampler this is diffusers' clip_sample=True.
    """
    if sigma_space(sched):
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


def denoise(unet, sched, labels: torch.Tensor | None, seeds, settings, *, eps_fn=guided_eps,
            callback: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None) -> torch.Tensor:
    """The reverse process with a ready diffusers scheduler (timesteps set); -> (B, C, H, W) in [-1, 1].

    settings: an object with guidance (w of paper eq. 4), eta, clip_x0 and precision, coral-ft's
    SampleConfig (the pipeline passes a namespace: this file imports no coral-ft). Any diffusers
    scheduler: the initial noise is scaled by `init_noise_sigma` and the model input by
    `scale_model_input` (both no-ops but for Euler-like schedulers); each sample's step noise comes
    from its own CPU generator. `callback(i, t, x)` runs after every step; a tensor it returns replaces x.
    """
    param = next(unet.parameters())
    device = param.device
    labels = None if labels is None else labels.to(device)  # None: an unconditional U-Net
    null = None if labels is None else null_label_of(unet)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    x = (initial_noise(unet, gens) * sched.init_noise_sigma).to(device, torch.float32)
    params = inspect.signature(sched.step).parameters
    step_kwargs = {"eta": settings.eta} if "eta" in params else {}
    if "generator" in params:
        # diffusers draws step noise with randn_tensor, which takes one generator per sample; ours
        # live on the CPU, so it draws there and moves the noise to the device (schedulers that
        # draw no noise, DDIM at eta 0 or DPM-Solver++, leave them untouched).
        step_kwargs["generator"] = gens
    for i, t in enumerate(sched.timesteps):
        x_in = sched.scale_model_input(x, t)
        with autocast(device, settings.precision):
            eps = eps_fn(unet, x_in.to(param.dtype), t.to(device), labels, settings.guidance, null)
        eps = eps.float()
        if settings.clip_x0:
            eps = clip_x0_eps(sched, eps, x, t)
        x = sched.step(eps, t, x, **step_kwargs).prev_sample
        if callback is not None:
            replaced = callback(i, t, x)
            x = x if replaced is None else replaced
    return x.float().clamp(-1, 1)


# -- the pipeline ---------------------------------------------------------------------------------
class CoralPipeline(DiffusionPipeline):
    """U-Net with a class embedding (row C = null label) + any diffusers scheduler."""

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet, scheduler, class_names: list[str] | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        names = list(class_names) if class_names else [str(i) for i in range(null_label_of(unet) or 0)]
        self.register_to_config(class_names=names)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @classmethod
    def from_coral(cls, path, device="cpu") -> CoralPipeline:
        """The pipeline of a coral-ft run directory or exported model folder (needs coral-ft installed)."""
        # Imported by name: diffusers scans a folder's pipeline.py for `from X import` lines and warns
        # that the folder "might require" each X, yet only this method, never the pipeline, needs coral-ft.
        import importlib

        try:
            load_model = importlib.import_module("coral_ft.checkpoint.model").load_model
        except ImportError:
            raise ValueError("from_coral reads coral-ft runs: pip install coral-ft (or load a pipeline folder "
                             "with DiffusionPipeline.from_pretrained)") from None
        unet, scheduler, info = load_model(path, device)
        return cls(unet, scheduler, info.class_names or None)

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> CoralPipeline:
        """A folder written by `save_pretrained`, read by this class itself: no code from the folder runs."""
        import diffusers

        folder = Path(folder)
        try:
            index = json.loads((folder / "model_index.json").read_text())
            scheduler_cls = getattr(diffusers, index["scheduler"][1])
            unet_cls = getattr(diffusers, index["unet"][1])
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{folder} is not a pipeline folder written by CoralPipeline.save_pretrained ({exc})") from None
        unet = unet_cls.from_pretrained(folder / "unet")
        return cls(unet, scheduler_cls.from_pretrained(folder / "scheduler"), index.get("class_names"))

    def save_pretrained(self, save_directory, **kwargs):
        """diffusers' folder plus this file as pipeline.py, so that DiffusionPipeline.from_pretrained
        finds this class there (trust_remote_code=True), with or without coral-ft installed."""
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        shutil.copyfile(Path(__file__), folder / PIPELINE_FILE)
        index = json.loads((folder / "model_index.json").read_text())
        index["_class_name"] = [Path(PIPELINE_FILE).stem, type(self).__name__]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))

    def _labels(self, class_labels, batch_size: int) -> torch.Tensor | None:
        if null_label_of(self.unet) is None:
            if class_labels is not None:
                raise ValueError("this model has no class embedding, so it cannot take class labels; "
                                 "pass batch_size=N for N unconditional images")
            return None
        if class_labels is None:  # diffusers' batch_size: the classes in turn
            return torch.arange(batch_size) % len(self.class_names)
        if isinstance(class_labels, (int, str)):
            class_labels = [class_labels]
        ids = []
        for c in class_labels.tolist() if torch.is_tensor(class_labels) else class_labels:
            if isinstance(c, str):
                if c not in self.class_names:
                    raise ValueError(f"unknown class {c!r}; this model's classes are {', '.join(self.class_names)}")
                c = self.class_names.index(c)
            if not 0 <= int(c) < len(self.class_names):
                raise ValueError(f"class label {c} is out of range 0..{len(self.class_names) - 1}")
            ids.append(int(c))
        if not ids:
            raise ValueError("class_labels is empty: give at least one class")
        return torch.tensor(ids, dtype=torch.long)

    @staticmethod
    def _guidance(guidance: float | None, guidance_scale: float | None) -> float:
        if guidance is not None and guidance_scale is not None:
            raise ValueError("give guidance (paper eq. 4's w) or guidance_scale (diffusers' 1 + w), not both")
        w = guidance_scale - 1.0 if guidance_scale is not None else (guidance or 0.0)
        if w < 0:
            raise ValueError(f"guidance must be >= 0 (guidance_scale >= 1; 0 = no guidance); got w = {w}")
        return w

    @torch.no_grad()
    def __call__(
        self,
        class_labels=None,
        guidance: float | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        batch_size: int = 1,
    ):
        """Generate one image per class label.

        class_labels: indices or class names (None: `batch_size` images, the classes in turn, or
        unconditional images from a model without a class embedding).
        guidance: paper eq. 4's w (0 = the plain conditional model); or guidance_scale = 1 + w.
        num_inference_steps: None = every training timestep of the scheduler.
        seed: sample i draws its noise from seed (seed, i), as `coral-ft sample --sample-seed`;
        else `generator` (one, or one per label) draws the per-sample seeds; else random.
        output_type: 'pil' (list of PIL images), 'np' ((B, H, W, C) float in [0, 1]) or 'pt'
        ((B, C, H, W) float in [0, 1]).
        callback_on_step_end(pipe, step, timestep, {"latents": x}) may return {"latents": x'}.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs or ["latents"]) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs can only hold {self._callback_tensor_inputs}; got {sorted(unknown)}")
        settings = SimpleNamespace(guidance=self._guidance(guidance, guidance_scale), eta=eta, clip_x0=False, precision="no")
        labels = self._labels(class_labels, batch_size)  # None: an unconditional model, batch_size images
        seeds = self._seeds(batch_size if labels is None else len(labels), seed, generator)
        self.scheduler.set_timesteps(num_inference_steps or self.scheduler.config.num_train_timesteps)
        with self.progress_bar(total=len(self.scheduler.timesteps)) as bar:

            def on_step(i, t, x):
                bar.update()
                if callback_on_step_end is not None:
                    out = callback_on_step_end(self, i, t, {"latents": x})
                    return (out or {}).get("latents", x)
                return x

            x = denoise(self.unet, self.scheduler, labels, seeds, settings, callback=on_step)
        images = x.add(1).div(2).cpu()  # (B, C, H, W) in [0, 1]
        if output_type == "pt":
            out = images
        else:
            out = images.permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
            if output_type == "pil":
                out = self.numpy_to_pil(out)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=out) if return_dict else (out,)

    @staticmethod
    def _seeds(n: int, seed, generator) -> list[int]:
        if seed is not None:
            return sample_seeds(seed, range(n))
        if generator is None:
            return torch.randint(0, 2**63 - 1, (n,)).tolist()
        gens = generator if isinstance(generator, list) else [generator] * n
        if len(gens) != n:
            raise ValueError(f"got {len(gens)} generators for {n} class labels; give one, or one per label")
        return [int(torch.randint(0, 2**63 - 1, (1,), generator=g)) for g in gens]


__all__ = ["CoralPipeline", "denoise", "guided_eps", "sample_seeds"]
