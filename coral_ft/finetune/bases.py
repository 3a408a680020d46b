"""Pretrained bases to fine-tune: where they are and whether they fit the data and the run.

A base is a diffusers `UNet2DModel` or `UNet2DConditionModel` (see `coral_ft.models.unets` for
the forms a location may take: folder, run directory, pipeline, cached hub ID).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch import nn

from coral_ft.errors import ConfigError
from coral_ft.models.unets import sample_size_of


def check_base_fits(unet: nn.Module, image_size: int, channels: int, num_classes: int, where: str) -> None:
    """Sample size, channels and class count of the base against the data (before any training)."""
    cfg = unet.config
    if sample_size_of(unet) != image_size:
        raise ConfigError(f"base {where} makes {sample_size_of(unet)}x{sample_size_of(unet)} images but the data is {image_size}x{image_size}; choose a matching base or data set")
    if cfg.in_channels != channels or cfg.out_channels != channels:
        raise ConfigError(f"base {where} has {cfg.in_channels} input / {cfg.out_channels} output channels but the data has {channels}")
    rows = getattr(cfg, "num_class_embeds", None)
    if rows and rows != num_classes + 1:
        raise ConfigError(
            f"base {where} has a class embedding for {rows - 1} classes (+ null label) but the data has {num_classes} classes; "
            "use a base trained on the same classes, or an unconditional base"
        )


SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end")


def base_scheduler_config(folder: Path) -> dict | None:
    # Beside the U-Net (coral-ft / plain folders) or in the pipeline's scheduler/ folder.
    for cand in (folder / "scheduler_config.json", folder.parent / "scheduler" / "scheduler_config.json"):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except ValueError:
                return None
    return None


def check_base_schedule(folder: Path, model_cfg) -> None:
    """The noise schedule the base was trained with must be the one fine-tuning uses.

    A base trained on other betas would be fine-tuned on noise levels it never saw, silently. Bases
    without a scheduler config beside them are taken on trust.
    """
    saved = base_scheduler_config(folder)
    if saved is None:
        return
    schedule = saved.get("beta_schedule", "linear")
    if schedule != "linear":
        raise ConfigError(f"base {folder} was trained with '{schedule}' betas; coral-ft trains with linear betas (paper section 2.1)")
    for key in SCHEDULE_KEYS:
        if key in saved and not math.isclose(saved[key], getattr(model_cfg, key), rel_tol=1e-12, abs_tol=1e-12):
            raise ConfigError(
                f"base {folder} uses {key}={saved[key]} but the run has model.{key}={getattr(model_cfg, key)}; "
                f"pass --set model.{key}={saved[key]}"
            )
