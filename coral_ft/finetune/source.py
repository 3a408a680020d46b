"""`FinetuneSource`: the trainer's U-Net comes from a pretrained base (full or LoRA fine-tuning).

build(): resolve the base (folder, run directory, cached hub ID) -> load it -> check sample size,
channels and class count against the data, and its noise schedule against the run's -> add a
zero-initialised class embedding when the base is unconditional -> with LoRA, inject adapters
and freeze the rest; without, train every weight -> wrap a cross-attention U-Net with its fixed
context. All checks run here, before the first step. save(): a plain diffusers folder (full) or
adapters + a reference to the base (LoRA); see `coral_ft.finetune.loading` for the layout.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from coral_ft.checkpoint.model import META_FILE, ModelInfo, save_model
from coral_ft.errors import ConfigError
from coral_ft.finetune.bases import check_base_fits, check_base_schedule, load_base_unet, resolve_base
from coral_ft.finetune.class_embedding import ensure_class_embedding
from coral_ft.finetune.context import inner_unet, make_context, needs_context, save_context, wrap_with_context
from coral_ft.finetune.loading import write_finetune_meta
from coral_ft.finetune.lora import attach_lora, lora_config, save_lora


class FinetuneSource:
    """A `UNetSource` (coral_ft.train.source) for `coral-ft finetune`."""

    from_scratch = False  # e.g. CBDM then draws its target labels uniformly

    def __init__(self, settings, cache_dir: str | Path | None = None):
        self.settings = settings  # a FinetuneConfig
        self.cache_dir = cache_dir  # Hugging Face cache; None: the default
        self.base_folder: Path | None = None
        self.added_class_embedding = False

    def load_base(self) -> nn.Module:
        if not self.settings.base:
            raise ConfigError("finetune.base is not set: pass --base with a model folder, run directory or cached hub ID")
        self.base_folder = resolve_base(self.settings.base, self.cache_dir)
        return load_base_unet(self.base_folder)

    def build(self, data, config) -> nn.Module:
        s = self.settings
        unet = self.load_base()
        check_base_fits(unet, data.image_size, data.channels, data.num_classes, str(self.base_folder))
        if config is not None:
            check_base_schedule(self.base_folder, config.model)
        if s.context is not None and not needs_context(unet):
            raise ConfigError("finetune.context is set but the base has no cross-attention (it is a UNet2DModel)")
        peft_cfg = lora_config(s.rank, s.alpha, s.targets) if s.lora else None
        self.added_class_embedding = ensure_class_embedding(unet, data.num_classes)
        if peft_cfg is not None:
            attach_lora(unet, peft_cfg)  # checks every target before injecting
        else:
            unet.requires_grad_(True)
        if needs_context(unet):
            unet = wrap_with_context(unet, make_context(unet, s.context, s.context_length))
        return unet

    def meta(self, unet: nn.Module) -> dict:
        return {
            "kind": "lora" if self.settings.lora else "full",
            "unet_class": type(inner_unet(unet)).__name__,
            "base": str(self.base_folder),
            "base_spec": self.settings.base,
            "added_class_embedding": self.added_class_embedding,
        }

    def save(self, unet: nn.Module, folder: Path, scheduler, info: ModelInfo) -> None:
        folder = Path(folder)
        core = inner_unet(unet)
        meta = self.meta(unet)
        info.extra = {**info.extra, "finetune": meta}
        if self.settings.lora:
            folder.mkdir(parents=True, exist_ok=True)
            core.save_config(folder)  # the architecture; the frozen base weights stay where they are
            save_lora(folder, core)
            scheduler.save_pretrained(folder)
            (folder / META_FILE).write_text(json.dumps(info.__dict__, indent=2))
        else:
            save_model(folder, core, scheduler, info)
        save_context(folder, unet)
        write_finetune_meta(folder, meta)
