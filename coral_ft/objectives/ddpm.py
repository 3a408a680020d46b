"""Plain DDPM: epsilon-prediction MSE (Ho et al. 2020, paper eq. 3), with guidance label dropout."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coral_ft.objectives.base import LossTerms, Objective, TrainBatch, register


@dataclass
class DDPMSettings:
    """DDPM has no settings of its own."""


@register
class DDPMObjective(Objective):
    name = "ddpm"
    settings_cls = DDPMSettings

    def __call__(self, denoiser, batch: TrainBatch, output_grad: torch.Tensor | None = None) -> LossTerms:
        out = denoiser(self.noised(batch), batch.t, batch.cond_labels)
        loss = self.mse(out.eps, batch.noise)
        return {"loss": loss, "diffusion": loss.detach()}
