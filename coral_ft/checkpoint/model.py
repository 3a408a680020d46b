"""The exported model folder: what sampling, evaluation and other tools read.

`RUN_DIR/model/` is a plain diffusers folder: `UNet2DModel.from_pretrained(RUN_DIR/model)` loads
it without coral_ft. Beside the U-Net weights it holds the noise schedule
(`scheduler_config.json`, diffusers' DDPMScheduler) and `coral_ft.json` (class names, data set,
default guidance). The projection head is training-only; it is saved to `RUN_DIR/head/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file

from coral_ft.errors import UserError

MODEL_SUBDIR = "model"
HEAD_SUBDIR = "head"
META_FILE = "coral_ft.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"


@dataclass
class ModelInfo:
    """What coral_ft records about an exported model beside the diffusers files."""

    class_names: list[str] = field(default_factory=list)
    dataset: str | None = None
    guidance: float | None = None  # the recipe's sampling guidance, used when none is given
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def make_scheduler(model_cfg) -> DDPMScheduler:
    """The DDPM schedule of paper section 2.1 with the peers' 'fixed large' sampling variance."""
    return DDPMScheduler(
        num_train_timesteps=model_cfg.num_train_timesteps,
        beta_start=model_cfg.beta_start,
        beta_end=model_cfg.beta_end,
        beta_schedule="linear",
        variance_type="fixed_large",
        prediction_type="epsilon",
        clip_sample=True,
        clip_sample_range=1.0,
    )


def save_model(folder: str | Path, unet, scheduler: DDPMScheduler, info: ModelInfo) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder)
    scheduler.save_pretrained(folder)
    (folder / META_FILE).write_text(json.dumps(info.__dict__, indent=2))
    return folder


def save_head(folder: str | Path, head: torch.nn.Module) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, folder / HEAD_WEIGHTS)
    cfg = {"in_features": head.proj.in_features, "dim": head.proj.out_features, "pooling": head.pooling}
    (folder / HEAD_CONFIG).write_text(json.dumps(cfg))


def load_head(folder: str | Path):
    from coral_ft.models.head import ProjectionHead

    folder = Path(folder)
    if not (folder / HEAD_WEIGHTS).is_file():
        return None
    cfg = json.loads((folder / HEAD_CONFIG).read_text())
    head = ProjectionHead(cfg["in_features"], cfg["dim"], "avg")
    if cfg["pooling"] == "flatten":
        head.pooling = "flatten"
    head.load_state_dict(load_file(folder / HEAD_WEIGHTS))
    return head


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory (with `model/`) or a model folder itself -> the model folder."""
    path = Path(path)
    for cand in (path / MODEL_SUBDIR, path):
        if (cand / "config.json").is_file():
            return cand
    raise UserError(
        f"no model at {path}: expected a run directory with {MODEL_SUBDIR}/config.json or a diffusers model folder"
    )


def load_info(model_dir: Path) -> ModelInfo:
    meta = model_dir / META_FILE
    return ModelInfo(**json.loads(meta.read_text())) if meta.is_file() else ModelInfo()


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """-> (unet in eval mode, DDPMScheduler, ModelInfo) from a run or model folder."""
    model_dir = resolve_model_dir(path)
    # Fine-tune runs (coral_ft.finetune): LoRA adapters on their base, unmerged, or a
    # UNet2DConditionModel with its fixed cross-attention context.
    from coral_ft.finetune.loading import is_finetune_model, load_finetuned_unet

    if is_finetune_model(model_dir):
        unet = load_finetuned_unet(model_dir)
    else:
        try:
            unet = UNet2DModel.from_pretrained(model_dir)
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot load the model in {model_dir}: {str(exc).splitlines()[0]}") from None
    if (model_dir / "scheduler_config.json").is_file():
        scheduler = DDPMScheduler.from_pretrained(model_dir)
    else:  # a bare diffusers U-Net: assume the DDPM defaults of the paper
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type="fixed_large")
    info = load_info(model_dir)
    if not info.class_names and unet.config.num_class_embeds:
        info.class_names = [str(i) for i in range(unet.config.num_class_embeds - 1)]
    return unet.to(device).eval(), scheduler, info
