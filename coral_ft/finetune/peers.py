"""The peers' `ckpt_{step}.pt` files (the CORAL, CBDM and T2H code bases) as coral-ft models.

`coral_ft.models.convert_peer` maps their weights onto a diffusers U-Net; this module writes the
result as a model folder (`coral-ft convert`).
"""

from __future__ import annotations

from pathlib import Path

from diffusers import UNet2DModel

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import ModelInfo, save_head, save_model
from coral_ft.models.convert_peer import PeerLayout
from coral_ft.models.head import ProjectionHead
from coral_ft.models.schedule import make_scheduler
from coral_ft.sample.card import write_model_card


def write_converted(out: str | Path, unet: UNet2DModel, head: ProjectionHead | None, layout: PeerLayout, source: str) -> Path:
    """OUT/model (diffusers folder + DDPM scheduler + coral_ft.json) and OUT/head when present."""
    run = RunDir(out)
    classes = [str(i) for i in range(layout.num_classes or 0)]
    info = ModelInfo(class_names=classes, extra={"converted_from": str(source), "peer_layout": layout.__dict__})
    # The peers' schedule: T steps, linear betas 1e-4 .. 0.02 (make_scheduler's defaults).
    model_dir = save_model(run.model, unet, make_scheduler(layout.num_timesteps), info)
    write_model_card(model_dir, info)
    if head is not None:
        save_head(run.head, head)
    return model_dir
