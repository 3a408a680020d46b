"""Ambient-space contrastive baseline (DiffROP-style; the CORAL paper's Table 4 comparison).

DiffROP's code was never published; this is the variant the paper contrasts with CORAL: the
contrast acts on the noise predictions (ambient/output space) rather than on the bottleneck.
A second forward at a negative label y_neg != y (uniform over the other classes) and a hinge that
pushes the two predictions at least `margin` apart,

    L = L_ddpm + lambda(t) * max(0, margin - ||eps(x_t, y) - eps(x_t, y_neg)||^2),

squared norm as the mean over elements, lambda(t) = w * exp((1 - t/T) / tau_r) the same schedule
as CORAL's eq. 7 so the two regularisers differ only in where they act. Gradient flows through
both forwards. Samples whose label was dropped for guidance have no class to contrast and get no
penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coral_ft.errors import check_non_negative, check_positive
from coral_ft.objectives.base import LossOutput, Objective, TrainBatch, register
from coral_ft.objectives.cbdm import per_sample_sq
from coral_ft.objectives.coral import time_weight


@dataclass
class AmbientSettings:
    weight: float = 0.01  # w of lambda(t)
    tau_r: float = 0.8
    margin: float = 0.1  # hinge margin on the mean squared difference of the predictions

    def __post_init__(self) -> None:
        check_non_negative("objective.ambient", self, "weight")
        check_positive("objective.ambient", self, "tau_r", "margin")


def draw_negatives(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) labels uniform over the classes other than each sample's own (labels in 0..C-1)."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % num_classes


@register
class AmbientObjective(Objective):
    settings_cls = AmbientSettings

    def prepare(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """y_neg of every sample of the step's global batch."""
        return {"negatives": draw_negatives(batch.labels, self.ctx.num_classes, batch.generator)}

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        s = self.settings
        x_t = self.noised(batch)
        eps_pos = denoiser(x_t, batch.t, batch.cond_labels).eps
        eps_neg = denoiser(x_t, batch.t, batch.extras["negatives"]).eps  # second forward
        diffusion = self.mse(eps_pos, batch.noise)

        distance = per_sample_sq(eps_pos, eps_neg)  # (B,)
        conditioned = (batch.cond_labels != self.ctx.null_label).float()
        lam = time_weight(batch.t, self.ctx.schedule.num_train_timesteps, s.weight, s.tau_r)
        penalty = (lam * conditioned * torch.relu(s.margin - distance)).mean()
        return LossOutput(diffusion + penalty, {"diffusion": diffusion.detach(), "contrastive": penalty.detach(),
                                                "distance": distance.mean().detach()})
