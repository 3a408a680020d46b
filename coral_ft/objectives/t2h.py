"""T2H, oriented calibration (Zhang et al., ICLR 2024), as a baseline beside CORAL.

No extra loss term: the DDPM target of sample i is replaced by the noise that would have produced
x_t^i from another clean image x0^j of the mini-batch. With sigma_t^2 = 1/abar_t - 1 and
c_i = x_t^i / sqrt(abar_t), j is drawn with weights

    w_ij ~ exp(-||c_i - x0^j||^2 / (2 sigma_{t_i}^2)),

(the posterior of "x_t^i came from x0^j" under the forward process), then gated by direction:
`t2h` (the method) keeps j only if p(y_j) >= p(y_i), so tail samples borrow head targets;
`h2t` keeps j only if p(y_j) <= p(y_i); `full` keeps every draw. A rejected draw falls back to
j = i, whose target is exactly the true noise. The target is

    eps~_i = (x_t^i - sqrt(abar_t) x0^j) / sqrt(1 - abar_t).

The transfer pool is the optimiser step's whole batch: the targets are drawn in `prepare`, on
the global batch before it is split over processes and micro-batches, so N GPUs and
`--grad-accum` train on exactly what one process with the whole batch trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coral_ft.errors import ConfigError, check_choice
from coral_ft.objectives.base import LossOutput, Objective, TrainBatch, register

DIRECTIONS = ("t2h", "h2t", "full")


@dataclass
class T2HSettings:
    direction: str = "t2h"

    def __post_init__(self) -> None:
        check_choice("objective.t2h.direction", self.direction, DIRECTIONS)


def transfer_weights(x_t: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """(B, B) row-stochastic w_ij for x_t, x0 (B, C, H, W) and abar (B,), in float64."""
    a = abar.double().view(-1, 1)
    c = x_t.double().flatten(1) / a.sqrt()  # (B, D) x_t^i rescaled to x0 scale
    d2 = torch.cdist(c, x0.double().flatten(1)).pow(2)  # (B, B) ||c_i - x0^j||^2
    sigma2 = (1.0 / a - 1.0).clamp(min=1e-12)  # (B, 1)
    return torch.softmax(-d2 / (2.0 * sigma2), dim=1)


def gate(labels: torch.Tensor, class_counts: torch.Tensor, direction: str) -> torch.Tensor:
    """(B, B) bool: may sample i take its target from sample j?"""
    p = class_counts.to(labels.device)[labels].double()  # (B,) class frequency of each sample
    if direction == "t2h":
        return p.view(1, -1) >= p.view(-1, 1)
    if direction == "h2t":
        return p.view(1, -1) <= p.view(-1, 1)
    return torch.ones(labels.shape[0], labels.shape[0], dtype=torch.bool, device=labels.device)


def transfer_indices(
    x_t: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor, labels: torch.Tensor,
    class_counts: torch.Tensor, direction: str, generator: torch.Generator,
) -> torch.Tensor:
    """(B,) index j of the clean image whose noise becomes sample i's target."""
    w = transfer_weights(x_t, x0, abar).cpu()  # the generator lives on the CPU
    j = torch.multinomial(w, 1, generator=generator).squeeze(1).to(labels.device)
    i = torch.arange(labels.shape[0], device=labels.device)
    allowed = gate(labels, class_counts, direction)[i, j]
    return torch.where(allowed, j, i)


@register
class T2HObjective(Objective):
    settings_cls = T2HSettings

    def __init__(self, settings, ctx):
        super().__init__(settings, ctx)
        counts = list(ctx.class_counts)
        if settings.direction != "full" and len(counts) != ctx.num_classes:
            raise ConfigError(
                f"objective.t2h.direction={settings.direction!r} needs the training counts of all "
                f"{ctx.num_classes} classes; use direction='full' when they are unknown"
            )
        self.counts = torch.tensor(counts or [1] * ctx.num_classes, dtype=torch.float64)

    @torch.no_grad()
    def prepare(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """eps~ of every sample of the step's global batch, drawn from that whole batch."""
        x_t = self.noised(batch)
        abar = self.ctx.schedule.abar(batch.t, batch.x0).flatten()  # (B,)
        j = transfer_indices(x_t, batch.x0, abar, batch.labels, self.counts, self.settings.direction, batch.generator)
        a = abar.view(-1, 1, 1, 1)
        target = (x_t - a.sqrt() * batch.x0[j]) / (1 - a).sqrt()  # eps~_i
        return {"target": target, "transferred": (j != torch.arange(len(j), device=j.device)).float()}

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        out = denoiser(self.noised(batch), batch.t, batch.cond_labels)
        loss = self.mse(out.eps, batch.extras["target"])
        return LossOutput(loss, {"diffusion": loss.detach(), "transferred": batch.extras["transferred"].mean()})
