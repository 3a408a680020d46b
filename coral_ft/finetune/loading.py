"""Reading a fine-tuned model folder back: LoRA adapters on their base (unmerged), or a full one.

A fine-tune run's `model/` holds, beside the usual `scheduler_config.json` and `coral_ft.json`:
- `finetune.json`: how it was made (`kind` full or lora, the U-Net class, where the base is),
- `config.json`: the fine-tuned U-Net's config (class embedding included),
- full fine-tuning: the diffusers weights (a plain folder that loads without coral_ft);
  LoRA: `adapter_config.json` + `adapter_model.safetensors` (peft) + `trained_modules.safetensors`
  (the class embedding), small, and the base is read again from where `finetune.json` points,
- `context.safetensors` for a `UNet2DConditionModel` (its fixed cross-attention input).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from coral_ft.errors import UserError
from coral_ft.finetune.bases import load_base_unet, resolve_base
from coral_ft.finetune.class_embedding import ensure_class_embedding
from coral_ft.finetune.context import load_context
from coral_ft.finetune.lora import load_lora

FINETUNE_FILE = "finetune.json"


def read_finetune_meta(model_dir: Path) -> dict | None:
    path = Path(model_dir) / FINETUNE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_finetune_meta(model_dir: Path, meta: dict) -> None:
    (Path(model_dir) / FINETUNE_FILE).write_text(json.dumps(meta, indent=2))


def is_finetune_model(model_dir: Path) -> bool:
    """Folders `load_finetuned_unet` must read (the plain UNet2DModel loader cannot)."""
    model_dir = Path(model_dir)
    if (model_dir / FINETUNE_FILE).is_file():
        return True
    try:  # any UNet2DConditionModel folder, e.g. a merged export
        return json.loads((model_dir / "config.json").read_text()).get("_class_name") == "UNet2DConditionModel"
    except (OSError, ValueError):
        return False


def locate_base(meta: dict, model_dir: Path) -> Path:
    """The base folder of a LoRA model: where it was, else its original spec (e.g. a hub ID)."""
    recorded = Path(meta["base"])
    if (recorded / "config.json").is_file():
        return recorded
    try:
        return resolve_base(meta["base_spec"])
    except UserError:
        raise UserError(
            f"the base of the LoRA model {model_dir} is gone ({meta['base']}); restore it, "
            "or export a merged copy where the base exists (`coral-ft export RUN --merge`)"
        ) from None


def load_finetuned_unet(model_dir: Path) -> nn.Module:
    """The fine-tuned U-Net (LoRA unmerged), wrapped with its context if it cross-attends."""
    model_dir = Path(model_dir)
    meta = read_finetune_meta(model_dir) or {"kind": "full"}
    if meta["kind"] == "lora":
        unet = load_base_unet(locate_base(meta, model_dir))
        num_classes = json.loads((model_dir / "config.json").read_text())["num_class_embeds"] - 1
        ensure_class_embedding(unet, num_classes)
        unet = load_lora(model_dir, unet)
    else:
        unet = load_base_unet(model_dir)
    return load_context(model_dir, unet)

