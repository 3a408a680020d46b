"""CBDM, class-balancing diffusion (Qin et al., CVPR 2023), as a baseline beside CORAL.

A second forward at a random target label y' and, per sample,

    L = L_ddpm + tau * (t/T) * ( ||eps(x_t, y) - sg(eps(x_t, y'))||^2
                                 + gamma * ||sg(eps(x_t, y)) - eps(x_t, y')||^2 ),

squared norms as means over all elements, sg = stop-gradient, gamma = 1/4 in the original. y' is
drawn from the training class frequencies when training from scratch and uniformly when
fine-tuning (a pretrained base has no frequencies of its own). The CORAL paper lists the weight
as tau_cb (Table 3: 1.0 on CIFAR, 50.0 on CelebA-5); it is `tau` here.

y is the label the U-Net is given in the main forward (so guidance-dropped samples compare the
unconditional prediction with eps(x_t, y')), which keeps the method at exactly two forwards. With
`objective.regularise_dropped = false` those samples get no regulariser (the official code
applies it only to batches whose labels were kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coral_ft.errors import check_choice, check_non_negative
from coral_ft.objectives.base import LossOutput, Objective, TrainBatch, register

TARGET_DISTS = ("auto", "frequency", "uniform")


@dataclass
class CBDMSettings:
    tau: float = 1.0  # tau_cb of the CORAL paper's Table 3
    gamma: float = 0.25  # weight of the commitment term that moves eps(x_t, y')
    target_dist: str = "auto"  # auto: frequency from scratch, uniform when fine-tuning

    def __post_init__(self) -> None:
        check_non_negative("objective.cbdm", self, "tau", "gamma")
        check_choice("objective.cbdm.target_dist", self.target_dist, TARGET_DISTS)


def per_sample_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per sample: (B, ...) x2 -> (B,)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


@register
class CBDMObjective(Objective):
    settings_cls = CBDMSettings

    def target_probs(self) -> torch.Tensor:
        """(C,) distribution of y': training frequencies from scratch, uniform when fine-tuning."""
        mode = self.settings.target_dist
        if mode == "auto":
            mode = "frequency" if self.ctx.from_scratch else "uniform"
        counts = torch.tensor(self.ctx.class_counts, dtype=torch.float64)
        if mode == "uniform" or counts.numel() != self.ctx.num_classes or counts.sum() <= 0:
            return torch.full((self.ctx.num_classes,), 1.0 / self.ctx.num_classes, dtype=torch.float64)
        return counts / counts.sum()

    def prepare(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """y' of every sample of the step's global batch."""
        n = batch.labels.shape[0]
        y_prime = torch.multinomial(self.target_probs(), n, replacement=True, generator=batch.generator)
        return {"target_labels": y_prime.to(batch.labels.device)}

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        s = self.settings
        x_t = self.noised(batch)
        eps_y = denoiser(x_t, batch.t, batch.cond_labels).eps  # (B, C, H, W)
        eps_target = denoiser(x_t, batch.t, batch.extras["target_labels"]).eps  # second forward, y'
        diffusion = self.mse(eps_y, batch.noise)

        pull = per_sample_sq(eps_y, eps_target.detach())  # moves eps(x_t, y) toward y'
        commit = per_sample_sq(eps_y.detach(), eps_target)  # moves eps(x_t, y') toward y
        weight = s.tau * (batch.t.float() + 1.0) / self.ctx.schedule.num_train_timesteps  # tau * t/T
        if not self.ctx.regularise_dropped:  # the official code: no CBDM term where the label was dropped
            weight = weight * (batch.cond_labels != self.ctx.null_label).float()
        regulariser = (weight * (pull + s.gamma * commit)).mean()
        return LossOutput(diffusion + regulariser, {"diffusion": diffusion.detach(), "regulariser": regulariser.detach()})
