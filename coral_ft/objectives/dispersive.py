"""Dispersive Loss (Wang and He 2025, "Diffuse and Disperse", arXiv 2506.09027) as a baseline.

A contrastive loss without positive pairs on an intermediate representation: it spreads the
batch's features apart, added to the diffusion loss with weight lambda. Here the representation
is the U-Net's bottleneck (the mid-block output of the training pass, flattened: the layer CORAL
regularises), and the batch is the optimiser step's whole batch (the trainer gathers the
features: `batch_term`). With z_i the features and D_ij a distance, the variants:

- `infonce-l2` (the paper's best): log( mean_{i,j} exp(-D_ij / tau) ) over every pair, the
  diagonal included, D_ij = ||z_i - z_j||^2 / dim (the authors' code divides by the dimension);
- `infonce-cosine`: the same with D_ij = -cos(z_i, z_j);
- `hinge`: mean_{i != j} max(0, margin - D_ij)^2, D the l2 distance above;
- `covariance`: the squared off-diagonal entries of the batch covariance of z standardised per
  dimension, summed and divided by the dimension.

No time weighting and no special case for samples whose label was dropped (the paper has none).
Defaults are the paper's (lambda 0.5, tau 0.5; its code uses 0.25 and 1): docs/defaults.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coral_ft.errors import check_choice, check_non_negative, check_positive
from coral_ft.objectives.base import LossOutput, LossTerms, Objective, TrainBatch, register

VARIANTS = ("infonce-l2", "infonce-cosine", "hinge", "covariance")


@dataclass
class DispersiveSettings:
    weight: float = 0.5  # lambda
    temperature: float = 0.5  # tau of the InfoNCE variants
    variant: str = "infonce-l2"
    margin: float = 1.0  # epsilon of the hinge variant

    def __post_init__(self) -> None:
        check_non_negative("objective.dispersive", self, "weight")
        check_positive("objective.dispersive", self, "temperature", "margin")
        check_choice("objective.dispersive.variant", self.variant, VARIANTS)


def squared_distances(z: torch.Tensor) -> torch.Tensor:
    """(B, B) ||z_i - z_j||^2 / dim for features (B, dim)."""
    sq = (z * z).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp(min=0.0) / z.shape[1]


def dispersive_loss(features: torch.Tensor, variant: str, temperature: float = 0.5, margin: float = 1.0) -> torch.Tensor:
    """The dispersive term of a batch of features (B, ...), flattened per sample."""
    z = features.float().flatten(1)  # (B, dim)
    b = z.shape[0]
    if variant in ("infonce-l2", "infonce-cosine"):
        if variant == "infonce-l2":
            d = squared_distances(z)
        else:
            u = F.normalize(z, dim=1)
            d = -(u @ u.T)
        return torch.logsumexp((-d / temperature).flatten(), dim=0) - math.log(b * b)  # log mean over B^2 pairs
    if variant == "hinge":
        off = ~torch.eye(b, dtype=torch.bool, device=z.device)
        return torch.relu(margin - squared_distances(z))[off].pow(2).mean()
    zs = (z - z.mean(dim=0)) / z.std(dim=0).clamp(min=1e-6)  # covariance: standardised per dimension
    cov = zs.T @ zs / max(b - 1, 1)  # (dim, dim)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / z.shape[1]


@register
class DispersiveObjective(Objective):
    settings_cls = DispersiveSettings

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        out = denoiser(self.noised(batch), batch.t, batch.cond_labels)
        diffusion = self.mse(out.eps, batch.noise)
        return LossOutput(diffusion, {"diffusion": diffusion.detach()}, features=out.bottleneck.flatten(1))

    def batch_term(self, features: torch.Tensor, batch: TrainBatch) -> tuple[torch.Tensor, LossTerms]:
        s = self.settings
        with torch.autocast(features.device.type, enabled=False):
            disp = dispersive_loss(features, s.variant, s.temperature, s.margin)
        return s.weight * disp, {"dispersive": disp.detach()}
