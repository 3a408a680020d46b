"""Plain DDPM: epsilon-prediction MSE (Ho et al. 2020, paper eq. 3), with guidance label dropout."""

from __future__ import annotations

from dataclasses import dataclass

from coral_ft.objectives.base import LossOutput, Objective, TrainBatch, register


@dataclass
class DDPMSettings:
    """DDPM has no settings of its own."""


@register
class DDPMObjective(Objective):
    settings_cls = DDPMSettings
    needs_labels = False

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        out = denoiser(self.noised(batch), batch.t, batch.cond_labels)
        loss = self.mse(out.eps, batch.noise)
        return LossOutput(loss, {"diffusion": loss.detach()})
