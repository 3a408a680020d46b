"""The one interface every training objective implements, and what they share.

An objective is called as `objective(denoiser, batch)` and returns a dict of named loss terms,
`"loss"` being the one to minimise. The trainer prepares the ingredients every method uses (the
clean images, the noise, the timesteps, the true and the guidance-dropped labels) and knows
nothing else about the method. A new method is one new module in this package that subclasses
`Objective` and decorates itself with `@register`.

Terms over the whole batch of an optimiser step stay over that batch whatever the number of
processes and micro-batches (`--grad-accum`):
- `prepare(batch)` sees the step's whole global batch before it is split, for terms that need no
  model (T2H's transfer targets); what it returns reaches each slice as `batch.extras`;
- a method with a term over the step's model outputs (CORAL's SupCon over the embeddings) names
  them in `step_output` and implements `step_outputs` and `step_loss`. With several
  micro-batches the trainer first computes those outputs without a graph, the term and its
  gradient with respect to them on the whole step batch, and then calls the objective on each
  micro-batch with its rows of that gradient (`output_grad`), so the parameters get exactly the
  gradient of one un-accumulated step.
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


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


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
    # Concatenate a per-process tensor over all processes, keeping the gradient (identity in a
    # single process). Batch-level terms use it so they do not change with the number of GPUs.
    gather: Callable[[torch.Tensor], torch.Tensor] = _identity


class Objective:
    """Base class: subclasses set `name`, `settings_cls`, `uses_head`, and implement __call__."""

    name: ClassVar[str]
    settings_cls: ClassVar[type]
    uses_head: ClassVar[bool] = False  # build the projection head (only when the method uses it)
    step_output: ClassVar[str | None] = None  # model output of a term over the whole step batch

    def __init__(self, settings, ctx: ObjectiveContext):
        self.settings = settings
        self.ctx = ctx

    def __call__(self, denoiser, batch: TrainBatch, output_grad: torch.Tensor | None = None) -> LossTerms:
        """Loss terms of one (micro-)batch. With `output_grad` (several micro-batches, a method with
        a `step_output`), "loss" is this batch's own part and "surrogate" a term whose gradient is
        the step-level term's gradient through this batch's outputs."""
        raise NotImplementedError

    def prepare(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Per-sample tensors computed on the step's whole global batch, before it is split."""
        return {}

    def step_outputs(self, denoiser, batch: TrainBatch) -> torch.Tensor:
        """The model outputs of `step_output` for a batch (methods with a step-level term)."""
        raise NotImplementedError

    def step_loss(self, outputs: torch.Tensor, batch: TrainBatch) -> tuple[torch.Tensor, LossTerms]:
        """(term, logged terms) over the outputs of the whole step batch (all processes)."""
        raise NotImplementedError

    # Shared pieces -------------------------------------------------------------------------
    def noised(self, batch: TrainBatch) -> torch.Tensor:
        return self.ctx.schedule.add_noise(batch.x0, batch.noise, batch.t)

    @staticmethod
    def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Mean over every element, as the peers and the diffusers examples compute it.
        return F.mse_loss(pred.float(), target.float())


@dataclass(frozen=True)
class ObjectiveEntry:
    cls: type[Objective]
    settings_cls: type


OBJECTIVES: dict[str, ObjectiveEntry] = {}


def register(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make a method selectable by its `name`."""
    OBJECTIVES[cls.name] = ObjectiveEntry(cls, cls.settings_cls)
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
    entry = OBJECTIVES[objective_cfg.method]
    return entry.cls(objective_cfg.active, ctx)
