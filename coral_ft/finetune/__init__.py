"""Fine-tuning a pretrained diffusers U-Net with CORAL or a baseline, in full or with LoRA.

`FinetuneSource` plugs into the one trainer (coral_ft.train.trainer); `export_model` turns a
run into a plain diffusers folder. See docs/finetune.md.
"""

from coral_ft.finetune.bases import load_base_unet, resolve_base
from coral_ft.finetune.class_embedding import add_class_embedding, ensure_class_embedding
from coral_ft.finetune.export import export_model
from coral_ft.finetune.loading import is_finetune_model, load_finetuned_unet
from coral_ft.finetune.lora import DEFAULT_TARGETS, attach_lora, lora_config, merge_lora
from coral_ft.finetune.source import FinetuneSource

__all__ = [
    "DEFAULT_TARGETS",
    "FinetuneSource",
    "add_class_embedding",
    "attach_lora",
    "ensure_class_embedding",
    "export_model",
    "is_finetune_model",
    "load_base_unet",
    "load_finetuned_unet",
    "lora_config",
    "merge_lora",
    "resolve_base",
]
