"""A class-conditional diffusers pipeline with classifier-free guidance (paper eq. 4).

diffusers' `DDPMPipeline` cannot pass class labels. `CoralPipeline` takes them, plus the guidance
weight w (w = 0: the plain conditional model; diffusers' guidance_scale would be 1 + w):

    pipe = CoralPipeline.from_coral("runs/cifar10-lt")          # any exported coral-ft model
    images = pipe(class_labels=[0, 9], guidance=0.6, num_inference_steps=1000, seed=0).images

The registered scheduler decides the sampler: the model's DDPMScheduler is the ancestral
sampler of the peers; `pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)` gives
DDIM. With `seed=S` sample i draws its noise exactly as `coral-ft sample --seed S` does, so the
pipeline reproduces the CLI's samples for the same labels.
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from coral_ft.errors import UserError
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.labels import sample_seeds
from coral_ft.sample.samplers import denoise

OUTPUT_TYPES = ("pil", "np", "pt")


class CoralPipeline(DiffusionPipeline):
    """U-Net with a class embedding (row C = null label) + a diffusers scheduler."""

    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self.class_names: list[str] = [str(i) for i in range(num_classes_of(unet) or 0)]

    @classmethod
    def from_coral(cls, path, device="cpu") -> "CoralPipeline":
        """The pipeline of a coral-ft run directory or exported model folder."""
        from coral_ft.checkpoint.model import load_model

        unet, scheduler, info = load_model(path, device)
        pipe = cls(unet, scheduler)
        pipe.class_names = list(info.class_names) or pipe.class_names
        return pipe

    def _labels(self, class_labels) -> torch.Tensor:
        if num_classes_of(self.unet) is None:
            raise UserError("this model has no class embedding, so it cannot take class labels")
        if isinstance(class_labels, (int, str)):
            class_labels = [class_labels]
        ids = []
        for c in class_labels.tolist() if torch.is_tensor(class_labels) else class_labels:
            if isinstance(c, str):
                if c not in self.class_names:
                    raise UserError(f"unknown class {c!r}; this model's classes are {', '.join(self.class_names)}")
                c = self.class_names.index(c)
            if not 0 <= int(c) < len(self.class_names):
                raise UserError(f"class label {c} is out of range 0..{len(self.class_names) - 1}")
            ids.append(int(c))
        if not ids:
            raise UserError("class_labels is empty: give at least one class")
        return torch.tensor(ids, dtype=torch.long)

    @torch.no_grad()
    def __call__(
        self,
        class_labels,
        guidance: float = 0.0,
        num_inference_steps: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Sample one image per entry of `class_labels` (ints or class names).

        num_inference_steps: None = every training timestep (the 1000-step DDPM sampler).
        seed: per-sample seeds derived from it as in `coral-ft sample`; else `generator`
        (one, or one per sample) seeds them; else torch's global RNG does.
        output_type: 'pil' (list of PIL images), 'np' ((B, H, W, C) float in [0, 1]) or 'pt'
        ((B, C, H, W) float in [0, 1]).
        """
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        if guidance < 0:
            raise UserError(f"guidance must be >= 0 (paper eq. 4, 0 = no guidance); got {guidance}")
        labels = self._labels(class_labels)
        seeds = self._seeds(len(labels), seed, generator)
        steps = num_inference_steps or self.scheduler.config.num_train_timesteps
        self.scheduler.set_timesteps(steps)
        x = denoise(self.unet, self.scheduler, labels, seeds, guidance, eta=eta)
        images = x.add(1).div(2).cpu()  # (B, C, H, W) in [0, 1]
        if output_type == "pt":
            out = images
        else:
            out = images.permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
            if output_type == "pil":
                out = self.numpy_to_pil(out)
        return ImagePipelineOutput(images=out) if return_dict else (out,)

    @staticmethod
    def _seeds(n: int, seed, generator) -> list[int]:
        if seed is not None:
            return sample_seeds(seed, range(n))
        if generator is None:
            return torch.randint(0, 2**63 - 1, (n,)).tolist()
        gens = generator if isinstance(generator, list) else [generator] * n
        if len(gens) != n:
            raise UserError(f"got {len(gens)} generators for {n} class labels; give one, or one per label")
        return [int(torch.randint(0, 2**63 - 1, (1,), generator=g)) for g in gens]


__all__ = ["CoralPipeline"]
