"""CORAL: DDPM + lambda(t) * SupCon on the projected bottleneck embeddings (paper eq. 6, 7, Alg. 1).

`features = "null"` (the bench's `coral-null`) feeds the head the bottleneck of a null-label pass
of the same noised batch instead (down path and mid block only, the null row held constant): in a
class-conditional U-Net the training pass's bottleneck can meet SupCon by carrying the label it was
given; the null pass's can only meet it with what it extracts from the image.

The contrastive term uses the TRUE labels (not the guidance-dropped ones). lambda(t) weights each
anchor by its own timestep, lambda(t) = w * exp((1 - t/T) / tau_r) with the paper's t in 1..T, and
the weighted losses are averaged over the anchors that have a positive. SupCon is the objective's
`batch_term`: the trainer gathers the embeddings of the step's whole batch (over GPUs and
micro-batches), so the regulariser is the same whatever the number of GPUs or `--grad-accum`.

`lambda_mode = "batch-mean"` weights as the official code instead: one batch-level SupCon value
times the batch mean of lambda, times tau_SC again. With `objective.regularise_dropped = false`
SupCon sees only the samples whose label was kept (the official code skips it on dropped
batches); `--official-code` sets both with the official per-batch label dropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coral_ft.errors import check_choice, check_non_negative, check_positive
from coral_ft.objectives._supcon import SUPCON_IMPLS, has_positive, supcon_per_anchor
from coral_ft.objectives.base import LossOutput, LossTerms, Objective, TrainBatch, register

FEATURES = ("conditioned", "null")
LAMBDA_MODES = ("per-anchor", "batch-mean")


@dataclass
class CoralSettings:
    weight: float = 0.01  # w of eq. 7 (Appendix A)
    tau_sc: float = 0.12  # SupCon temperature (Table 3, CIFAR10-LT rho=0.01)
    tau_r: float = 0.8  # decay temperature of lambda(t) (Table 3)
    lambda_mode: str = "per-anchor"  # or "batch-mean" (official code)
    supcon_impl: str = "fused"  # or "pml" (pytorch-metric-learning; same values, slower on GPU)
    # The bottleneck the head reads: "conditioned" (the training forward's, paper) or "null" (a
    # second pass of the same noised batch with every label null: what the image alone gives).
    features: str = "conditioned"

    def __post_init__(self) -> None:
        check_non_negative("objective.coral", self, "weight")
        check_positive("objective.coral", self, "tau_sc", "tau_r")
        check_choice("objective.coral.lambda_mode", self.lambda_mode, LAMBDA_MODES)
        check_choice("objective.coral.supcon_impl", self.supcon_impl, SUPCON_IMPLS)
        check_choice("objective.coral.features", self.features, FEATURES)


def time_fraction(t: torch.Tensor, num_timesteps: int) -> torch.Tensor:
    """t/T with the paper's t in 1..T (`t` indexes 0..T-1): near 1 at the noisiest steps."""
    return (t.float() + 1.0) / num_timesteps


def time_weight(t: torch.Tensor, num_timesteps: int, weight: float, tau_r: float) -> torch.Tensor:
    """lambda(t) = w * exp((1 - t/T) / tau_r), paper eq. 7."""
    return weight * torch.exp((1.0 - time_fraction(t, num_timesteps)) / tau_r)


@register
class CoralObjective(Objective):
    settings_cls = CoralSettings
    uses_head = True

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        null = self.settings.features == "null"
        out = denoiser(self.noised(batch), batch.t, batch.cond_labels, null_features=null)
        diffusion = self.mse(out.eps, batch.noise)
        return LossOutput(diffusion, {"diffusion": diffusion.detach()}, features=out.embedding)

    def batch_term(self, embeddings: torch.Tensor, batch: TrainBatch) -> tuple[torch.Tensor, LossTerms]:
        """lambda-weighted SupCon of the step's embeddings (B, D) with the batch's TRUE labels."""
        z, labels, t = embeddings, batch.labels, batch.t
        if not self.ctx.regularise_dropped:  # the official code: SupCon on label-kept samples only
            kept = batch.cond_labels != self.ctx.null_label
            z, labels, t = z[kept], labels[kept], t[kept]
        return coral_term(z, labels, t, self.ctx.schedule.num_train_timesteps, self.settings)


def coral_term(embeddings: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, num_train_timesteps: int,
               settings: CoralSettings) -> tuple[torch.Tensor, LossTerms]:
    """The CORAL term of a batch: lambda(t)-weighted SupCon of its embeddings (B, D), true labels
    (B,) and timesteps (B,) in 0..T-1, and its logged terms. The one computation of the term: the
    objective's `batch_term` and `CoralRegularizer` (coral_ft.train.regularizer) both call it.

    In float32 even under autocast: similarities over a temperature of 0.1 and a log-sum-exp lose
    too much in bf16/fp16."""
    s = settings
    with torch.autocast(embeddings.device.type, enabled=False):
        z = embeddings.float()
        per_anchor = supcon_per_anchor(z, labels, s.tau_sc, s.supcon_impl)  # (B,)
        n_valid = has_positive(labels).float().sum().clamp(min=1.0)
        lam = time_weight(t, num_train_timesteps, s.weight, s.tau_r)
        supcon = per_anchor.sum() / n_valid  # pytorch-metric-learning's reduced value
        if s.lambda_mode == "per-anchor":
            contrastive = (lam * per_anchor).sum() / n_valid
        else:  # an empty (all-dropped) set has lam.mean() = nan: no term, as the official code
            contrastive = supcon * lam.mean().nan_to_num(0.0) * s.tau_sc
    return contrastive, {"supcon": supcon.detach(), "contrastive": contrastive.detach(),
                         "lambda_mean": lam.mean().nan_to_num(0.0).detach()}
