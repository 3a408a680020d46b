"""CCUA, contrastive conditional-unconditional alignment (Chen et al. 2025, arXiv 2507.09052),
as a baseline beside CORAL.

L = L_ddpm + alpha * L_ucl + gamma * L_al, with, per sample i at timestep t_i (t/T = (t_i + 1) / T):

- the alignment loss pulls the class-conditional prediction towards the unconditional one, most
  at large t (the early denoising steps become class-agnostic: head classes lend the tail their
  coarse structure), with no stop-gradient on either side, as the authors' code:
      L_al = mean_i (t_i/T) * ||eps(x_t, y_i) - eps(x_t, null)||^2   (squared norm as a mean over elements)
  on the samples that kept their label (a dropped label has nothing to align);
- the unsupervised contrastive loss spreads the UNCONDITIONAL bottleneck features of the step's
  batch apart: InfoNCE with each sample as its own positive and every other sample as a negative,
  on the flattened, L2-normalised mid-block output u_i of the unconditional pass:
      L_ucl = mean_i w_i * log(1 + sum_{j != i} exp((u_i . u_j - 1) / tau)),  w_i = t_i/T or 1.

The unconditional pass is a second forward of the same x_t with every label null, so a step costs
about two forwards (as CBDM's). The negatives are the optimiser step's whole batch (the trainer
gathers the features over GPUs and micro-batches: `batch_term`); the authors' code takes them per
GPU. Batch resampling, which the paper couples with UCL on ImageNet-LT and TinyImageNet-LT, is a
data option for any method: `data.resample_power` (0.5: square-root sampling, what the authors'
`--brs_factor 0.1` amounts to on rho = 0.01 data). Settings and departures: docs/defaults.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coral_ft.errors import check_non_negative, check_positive
from coral_ft.objectives.base import LossOutput, LossTerms, Objective, TrainBatch, register
from coral_ft.objectives.cbdm import per_sample_sq
from coral_ft.objectives.coral import time_fraction


@dataclass
class CCUASettings:
    # The authors' only released U-Net script (TinyImageNet-LT) uses alpha = gamma = 1; no CIFAR-LT
    # settings are released (their SiT runs: 0.05 each).
    ucl_weight: float = 1.0  # alpha
    align_weight: float = 1.0  # gamma
    temperature: float = 0.1  # tau of UCL (the InfoNCE package default the authors' code relies on)
    time_weighted_ucl: bool = True  # UCL x t/T, as the authors' code (the paper: only on two data sets)

    def __post_init__(self) -> None:
        check_non_negative("objective.ccua", self, "ucl_weight", "align_weight")
        check_positive("objective.ccua", self, "temperature")


def unsupervised_infonce(features: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B,) InfoNCE of each sample against the others, itself the only positive (paper's UCL):
    log(1 + sum_{j != i} exp((cos_ij - 1) / tau)) = logsumexp_j(cos_ij / tau) - 1 / tau."""
    u = F.normalize(features.float().flatten(1), dim=1)  # (B, D)
    logits = u @ u.T / temperature  # (B, B), the diagonal is 1 / tau
    return torch.logsumexp(logits, dim=1) - 1.0 / temperature


@register
class CCUAObjective(Objective):
    settings_cls = CCUASettings

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        s = self.settings
        x_t = self.noised(batch)
        cond = denoiser(x_t, batch.t, batch.cond_labels)
        uncond = denoiser(x_t, batch.t, torch.full_like(batch.labels, self.ctx.null_label))  # second forward
        diffusion = self.mse(cond.eps, batch.noise)
        kept = (batch.cond_labels != self.ctx.null_label).float()
        frac = time_fraction(batch.t, self.ctx.schedule.num_train_timesteps)
        align = (frac * kept * per_sample_sq(cond.eps, uncond.eps)).mean()
        return LossOutput(diffusion + s.align_weight * align, {"diffusion": diffusion.detach(), "align": align.detach()},
                          features=uncond.bottleneck.flatten(1))

    def batch_term(self, features: torch.Tensor, batch: TrainBatch) -> tuple[torch.Tensor, LossTerms]:
        """UCL over the unconditional bottleneck features of the step's whole batch (B, D), in float32."""
        s = self.settings
        with torch.autocast(features.device.type, enabled=False):
            per_sample = unsupervised_infonce(features, s.temperature)  # (B,)
            if s.time_weighted_ucl:
                per_sample = per_sample * time_fraction(batch.t, self.ctx.schedule.num_train_timesteps)
            ucl = per_sample.mean()
        return s.ucl_weight * ucl, {"ucl": ucl.detach()}
