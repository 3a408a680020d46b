"""The model card of a model folder: README.md in the Hugging Face format, what the model is and
how to sample it.

The card's table and its code snippet read the same [sample] settings (the run's config.toml, or
an exported folder's coral_ft.json: `coral_ft.checkpoint.model.load_info`) and the same
sampler registry, so the snippet runs the sampler and the number of steps the table names (the
scheduler coral-ft's own sampler builds, `coral_ft.sample.samplers.sampler_options`).
"""

from __future__ import annotations

from pathlib import Path

from coral_ft.checkpoint.model import ModelInfo, load_info
from coral_ft.sample.registry import SAMPLERS

CARD_FILE = "README.md"


def sampler_steps(sample: dict) -> int | str | None:
    """The steps the run's sampler takes, as the card states them (None: no sampler recorded)."""
    spec = SAMPLERS.get(sample.get("sampler"))
    if spec is None:
        return None
    return sample.get("steps") or spec.default_steps or "every timestep"


def write_model_card(folder: Path, info: ModelInfo, metrics: dict | None = None, pipeline: bool = False) -> Path:
    """README.md in the Hugging Face model-card format: what the model is, how to sample it."""
    extra = info.extra
    sample = extra.get("sample") or load_info(folder).extra.get("sample", {})
    rows = [("data set", info.dataset), ("imbalance (rho)", extra.get("imbalance")), ("method", extra.get("method")),
            ("training steps", extra.get("step")), ("classes", info.num_classes or None),
            ("guidance W (paper eq. 4)", sample.get("guidance")), ("sampler", sample.get("sampler")),
            ("sampler steps", sampler_steps(sample))]
    lines = ["---", "library_name: diffusers", "tags: [coral-ft, diffusion, class-conditional, long-tailed]", "---", "",
             f"# {extra.get('method', 'class-conditional').upper()} U-Net{f' on {info.dataset}' if info.dataset else ''}", "",
             "A class-conditional diffusers `UNet2DModel` trained with coral-ft (CORAL: contrastive bottleneck "
             "regularisation for long-tailed diffusion models). Class embedding row C is the null label of "
             "classifier-free guidance.", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None]
    for name, entry in (metrics or {}).items():
        value = entry.get("value", entry.get("mean"))
        if isinstance(value, (int, float)):
            lines.append(f"| {name} | {value:.4g} |")
    if info.class_names:
        counts = extra.get("class_counts")
        names = [f"{n} ({c})" for n, c in zip(info.class_names, counts)] if counts else info.class_names
        lines += ["", "Classes (training images): " + ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")]
    lines += ["", "```python", *_how_to_load(info, pipeline), *_how_to_sample(sample), "```", ""]
    path = Path(folder) / CARD_FILE
    path.write_text("\n".join(lines))
    return path


def _how_to_sample(sample: dict) -> list[str]:
    """The snippet's sampling lines: the table's sampler (as coral-ft builds its scheduler), steps and W."""
    from coral_ft.sample.samplers import sampler_options

    call = f"class_labels=[0, 1], guidance={sample.get('guidance', 0.0):g}"
    name = sample.get("sampler")
    if name not in SAMPLERS:  # no sampler recorded: the folder's own scheduler, every timestep
        return [f"images = pipe({call}).images  # guidance: w of eq. 4"]
    spec = SAMPLERS[name]
    options = "".join(f", {k}={v!r}" for k, v in sampler_options(name).items())
    lines = [f"from diffusers import {spec.scheduler}", "",
             f"# the run's sampler (sample.sampler = {name}), as coral-ft builds it",
             f"pipe.scheduler = {spec.scheduler}.from_config(pipe.scheduler.config{options})"]
    steps = sampler_steps(sample)
    if isinstance(steps, int):
        call += f", num_inference_steps={steps}"
    if sample.get("eta"):
        call += f", eta={sample['eta']:g}"
    if sample.get("clip_x0"):
        lines.append("# the run clamps each step's x0 prediction (sample.clip_x0); this pipeline does not")
    return lines + [f"images = pipe({call}).images  # guidance: w of eq. 4"]


def _how_to_load(info: ModelInfo, pipeline: bool) -> list[str]:
    """The model card's loading lines, true to the folder's kind (pipeline, LoRA adapters, full weights)."""
    if pipeline:
        return ["from diffusers import DiffusionPipeline", "",
                "# this folder's pipeline.py needs only diffusers and torch (diffusers asks trust_remote_code for folder code)",
                'pipe = DiffusionPipeline.from_pretrained("PATH", trust_remote_code=True)']
    coral = ["from coral_ft.sample.pipeline import CoralPipeline", "", 'pipe = CoralPipeline.from_coral("PATH")']
    finetune = info.extra.get("finetune") or {}
    if finetune.get("kind") == "lora":
        return coral + ["# without coral-ft: these are peft LoRA adapters on the base they name (adapter_config.json):",
                        f'#   base = diffusers.UNet2DModel.from_pretrained("{finetune.get("base_spec") or "BASE"}"'
                        ', num_class_embeds=CLASSES + 1, low_cpu_mem_usage=False, ignore_mismatched_sizes=True)',
                        '#   unet = peft.PeftModel.from_pretrained(base, "PATH").merge_and_unload()',
                        "# or a plain folder: coral-ft export RUN --merge --out DIR"]
    return coral + ['# or, without coral-ft: diffusers.UNet2DModel.from_pretrained("PATH") and your own guided sampler']
