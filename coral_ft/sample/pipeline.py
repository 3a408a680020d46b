"""A class-conditional diffusers pipeline with classifier-free guidance (paper eq. 4).

diffusers' `DDPMPipeline` cannot pass class labels. `CoralPipeline` takes them (indices or class
names), and the guidance weight either as the paper's w (`guidance`, w = 0: the plain conditional
model) or as diffusers' `guidance_scale` (= 1 + w):

    pipe = CoralPipeline.from_coral("runs/cifar10-lt")            # any coral-ft run or model folder
    images = pipe(class_labels=[0, 9], guidance=0.6, num_inference_steps=1000, seed=0).images
    pipe.save_pretrained("exported/c10lt-pipeline")               # model_index.json, unet/, scheduler/, pipeline.py
    pipe = CoralPipeline.from_pretrained("exported/c10lt-pipeline")
    pipe = DiffusionPipeline.from_pretrained("exported/c10lt-pipeline", trust_remote_code=True)  # via pipeline.py

The registered scheduler decides the sampler, from any family: the model's DDPMScheduler is the
ancestral sampler of the peers; `pipe.scheduler = DPMSolverMultistepScheduler.from_config(...)`
(or DDIM, UniPC, Euler, ...) gives another, with the initial noise and the model input scaled as
each family needs. With `seed=S`, sample i draws its noise exactly as `coral-ft sample
--sample-seed S` does, so the pipeline reproduces the CLI's samples for the same labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from coral_ft.errors import UserError
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.labels import sample_seeds
from coral_ft.sample.samplers import denoise

OUTPUT_TYPES = ("pil", "np", "pt")
PIPELINE_FILE = "pipeline.py"
# Saved beside model_index.json: DiffusionPipeline.from_pretrained imports it when the index names
# ["pipeline", "CoralPipeline"] as the class.
PIPELINE_SHIM = '''"""The coral-ft pipeline of this folder; DiffusionPipeline.from_pretrained loads it from here."""
from coral_ft.sample.pipeline import CoralPipeline  # pip install coral-ft

__all__ = ["CoralPipeline"]
'''


class CoralPipeline(DiffusionPipeline):
    """U-Net with a class embedding (row C = null label) + any diffusers scheduler."""

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, unet, scheduler, class_names: list[str] | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        names = list(class_names) if class_names else [str(i) for i in range(num_classes_of(unet) or 0)]
        self.register_to_config(class_names=names)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @classmethod
    def from_coral(cls, path, device="cpu") -> CoralPipeline:
        """The pipeline of a coral-ft run directory or exported model folder."""
        from coral_ft.checkpoint.model import load_model

        unet, scheduler, info = load_model(path, device)
        return cls(unet, scheduler, info.class_names or None)

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> CoralPipeline:
        """A folder written by `save_pretrained`, read by this class itself: no code from the folder runs."""
        import diffusers

        from coral_ft.models.unets import load_unet

        folder = Path(folder)
        try:
            index = json.loads((folder / "model_index.json").read_text())
            scheduler_cls = getattr(diffusers, index["scheduler"][1])
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise UserError(f"{folder} is not a pipeline folder written by CoralPipeline.save_pretrained ({exc})") from None
        return cls(load_unet(folder / "unet"), scheduler_cls.from_pretrained(folder / "scheduler"), index.get("class_names"))

    def save_pretrained(self, save_directory, **kwargs):
        """diffusers' folder plus pipeline.py, so that DiffusionPipeline.from_pretrained finds this class."""
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        (folder / PIPELINE_FILE).write_text(PIPELINE_SHIM)
        index = json.loads((folder / "model_index.json").read_text())
        index["_class_name"] = [Path(PIPELINE_FILE).stem, type(self).__name__]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))

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

    @staticmethod
    def _guidance(guidance: float | None, guidance_scale: float | None) -> float:
        if guidance is not None and guidance_scale is not None:
            raise UserError("give guidance (paper eq. 4's w) or guidance_scale (diffusers' 1 + w), not both")
        w = guidance_scale - 1.0 if guidance_scale is not None else (guidance or 0.0)
        if w < 0:
            raise UserError(f"guidance must be >= 0 (guidance_scale >= 1; 0 = no guidance); got w = {w}")
        return w

    @torch.no_grad()
    def __call__(
        self,
        class_labels,
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
    ):
        """Sample one image per entry of `class_labels` (ints or class names).

        guidance: paper eq. 4's w (0 = the plain conditional model); or guidance_scale = 1 + w.
        num_inference_steps: None = every training timestep (the 1000-step DDPM sampler).
        seed: per-sample seeds derived from it as in `coral-ft sample`; else `generator`
        (one, or one per sample) seeds them; else torch's global RNG does.
        output_type: 'pil' (list of PIL images), 'np' ((B, H, W, C) float in [0, 1]) or 'pt'
        ((B, C, H, W) float in [0, 1]).
        callback_on_step_end(pipe, step, timestep, {"latents": x}) may return {"latents": x'}.
        """
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs or ["latents"]) - set(self._callback_tensor_inputs)
        if unknown:
            raise UserError(f"callback_on_step_end_tensor_inputs can only hold {self._callback_tensor_inputs}; got {sorted(unknown)}")
        w = self._guidance(guidance, guidance_scale)
        labels = self._labels(class_labels)
        seeds = self._seeds(len(labels), seed, generator)
        self.scheduler.set_timesteps(num_inference_steps or self.scheduler.config.num_train_timesteps)
        with self.progress_bar(total=len(self.scheduler.timesteps)) as bar:

            def on_step(i, t, x):
                bar.update()
                if callback_on_step_end is not None:
                    out = callback_on_step_end(self, i, t, {"latents": x})
                    return (out or {}).get("latents", x)
                return x

            x = denoise(self.unet, self.scheduler, labels, seeds, w, eta=eta, callback=on_step)
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
            raise UserError(f"got {len(gens)} generators for {n} class labels; give one, or one per label")
        return [int(torch.randint(0, 2**63 - 1, (1,), generator=g)) for g in gens]


__all__ = ["CoralPipeline"]
