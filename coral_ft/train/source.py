"""Where the U-Net being trained comes from, and how the finished one is written.

The trainer is the same loop for training from scratch and for fine-tuning (full or LoRA); what
differs is a `UNetSource`: it builds the U-Net (its `requires_grad` flags say what trains) and
writes the final EMA model. Checkpoints hold only the trainable parameters, so a LoRA run's
checkpoints are as small as its adapters; resuming rebuilds the U-Net from the source first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from torch import nn

from coral_ft.checkpoint.model import ModelInfo, save_model
from coral_ft.data.registry import LabeledImages
from coral_ft.models.presets import build_unet
from coral_ft.models.schedule import scheduler_for
from coral_ft.sample.card import write_model_card


class UNetSource(Protocol):
    from_scratch: bool  # objectives may differ (CBDM draws target labels differently)

    def build(self, data: LabeledImages, config) -> nn.Module:
        """The U-Net to train, class-conditional with data.num_classes + 1 embedding rows."""
        ...

    def scheduler(self, config):
        """The DDPM scheduler the U-Net is trained with (and ships with): its forward process."""
        ...

    def save(self, unet: nn.Module, folder: Path, scheduler, info: ModelInfo) -> None:
        """Write the final (EMA) U-Net to `folder` (the run's `model/`)."""
        ...


class FromScratch:
    """A freshly initialised preset U-Net (`coral-ft train --from-scratch`)."""

    from_scratch = True

    def build(self, data: LabeledImages, config) -> nn.Module:
        m = config.model
        return build_unet(m.preset, data.image_size, data.channels, data.num_classes if m.conditional else None, m.dropout)

    def scheduler(self, config):
        return scheduler_for(config.model)

    def save(self, unet: nn.Module, folder: Path, scheduler, info: ModelInfo) -> None:
        save_model(folder, unet, scheduler, info)
        write_model_card(folder, info)
