"""Fine-tuning a pretrained diffusers U-Net with CORAL or a baseline, in full or with LoRA.

`FinetuneSource` plugs into the one trainer (coral_ft.train.trainer); `export_model` turns a
run into a plain diffusers folder. See docs/finetune.md.
"""

from coral_ft.finetune.export import export_model
from coral_ft.finetune.source import FinetuneSource

__all__ = ["FinetuneSource", "export_model"]
