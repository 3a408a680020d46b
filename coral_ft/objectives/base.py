"""The one interface every training objective implements, and what they share.

The trainer draws everything random a step needs for its whole global batch (`TrainBatch`: the
clean images, noise, timesteps, true and guidance-dropped labels, dropout keys) and knows nothing
else about the method. A method is a module in this package with a `@register`-ed subclass of
`Objective` and at most three parts:

- `prepare(batch)`: its own random draws (or model-free targets), made on the step's whole
  global batch before it is split over processes and micro-batches (T2H's transfer targets,
  CBDM's and the ambient baseline's extra labels); each slice gets its rows as `batch.extras`;
- `__call__(denoiser, batch)` on one micro-batch -> `LossOutput`: its loss, the terms to log, and
  (for a batch-level term) the per-sample `features` that term spans;
- `batch_term(features, batch)`: a term over the features of the step's WHOLE batch (CORAL's
  SupCon). The trainer gathers the features over processes and micro-batches, so the term is
  the same for any number of GPUs and any `--grad-accum`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from coral_ft.models.schedule import ForwardProcess

LossTerms = dict[str, torch.Tensor]


@dataclass
class TrainBatch:
    """One (per-process) batch with the randomness every method shares, drawn by the trainer."""

    x0: torch.Tensor  # (B, C, H, W) clean images in [-1, 1]
    labels: torch.Tensor  # (B,) true labels
    cond_labels: torch.Tensor | None  # (B,) labels given to the U-Net, some replaced by the null label; None: unconditional
    t: torch.Tensor  # (B,) timesteps in 0..T-1
    noise: torch.Tensor  # (B, C, H, W) standard normal
    # CPU generator of a method's own draws: given to `prepare` on the step's global batch (so the
    # draws do not depend on the split); None on the micro-batches that reach `__call__`.
    generator: torch.Generator | None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # this slice of what `prepare` returned
    keys: torch.Tensor | None = None  # (B,) int64 dropout keys (coral_ft.models.dropout)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar: this batch's own loss, a mean over its samples
    logged: LossTerms  # detached terms for metrics.jsonl and the trackers
    features: torch.Tensor | None = None  # (B, D) what `batch_term` spans the whole step over


@dataclass
class ObjectiveContext:
    """What an objective may know about the run, fixed for its whole length."""

    schedule: ForwardProcess  # the model's DDPM scheduler as q(x_t | x_0)
    num_classes: int
    null_label: int | None  # None: an unconditional U-Net (ddpm only)
    class_counts: list[int] = field(default_factory=list)  # training-set counts per class
    from_scratch: bool = True  # False when fine-tuning a pretrained base
    # Extra terms also on samples whose label was dropped for guidance (paper Algorithm 1);
    # False: only on samples that kept their label (the official code).
    regularise_dropped: bool = True


class Objective:
    """Base class: subclasses set `settings_cls`, `uses_head`, `needs_labels`, and implement __call__."""

    name: ClassVar[str]  # set by `register`: the module's name
    settings_cls: ClassVar[type]
    uses_head: ClassVar[bool] = False  # build the projection head (only when the method uses it)
    needs_labels: ClassVar[bool] = True  # False: it also trains an unconditional U-Net (no class embedding)
    # (features of the whole step (B, D), the step's global batch) -> (term, logged terms); None: no such term
    batch_term: ClassVar[Callable | None] = None

    def __init__(self, settings, ctx: ObjectiveContext):
        self.settings = settings
        self.ctx = ctx

    def prepare(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Per-sample tensors drawn or computed on the step's whole global batch, before it is split."""
        return {}

    def __call__(self, denoiser, batch: TrainBatch) -> LossOutput:
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def loss_terms(self, denoiser, batch: TrainBatch) -> LossTerms:
        """The whole loss of one batch in one process (`prepare`, the call, the batch term): {"loss", logged terms}."""
        if not batch.extras:
            batch.extras = self.prepare(batch)
        out = self(denoiser, batch)
        loss, logged = out.loss, dict(out.logged)
        if self.batch_term is not None:
            term, extra = self.batch_term(out.features, batch)
            loss, logged = loss + term, {**logged, **extra}
        return {"loss": loss, **logged}

    # Shared pieces -------------------------------------------------------------------------
    def noised(self, batch: TrainBatch) -> torch.Tensor:
        return self.ctx.schedule.add_noise(batch.x0, batch.noise, batch.t)

    @staticmethod
    def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Mean over every element, as the peers and the diffusers examples compute it.
        return F.mse_loss(pred.float(), target.float())


OBJECTIVES: dict[str, type[Objective]] = {}  # method name -> its class


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make a method selectable by its name, the name of its module (so the
    names are known without importing any method: coral_ft.objectives.method_names)."""
    cls.name = cls.__module__.rsplit(".", 1)[-1]
    OBJECTIVES[cls.name] = cls
    return cls


def drop_labels(
    labels: torch.Tensor, p_uncond: float, null_label: int, mode: str, generator: torch.Generator
) -> torch.Tensor:
    """Replace labels by the null label for classifier-free guidance training.

    `per-sample` (paper Algorithm 1) drops each label with probability p_uncond; `per-batch`
    (the peers' code) drops the whole batch at once with that probability.
    """
    if mode == "per-sample":
        drop = torch.rand(labels.shape, generator=generator) < p_uncond
    elif mode == "per-batch":
        drop = (torch.rand((), generator=generator) < p_uncond).expand(labels.shape)
    else:
        raise ValueError(f"unknown label-drop mode {mode!r}")
    return torch.where(drop.to(labels.device), torch.full_like(labels, null_label), labels)


def build_objective(objective_cfg, ctx: ObjectiveContext) -> Objective:
    return OBJECTIVES[objective_cfg.method](objective_cfg.active, ctx)
