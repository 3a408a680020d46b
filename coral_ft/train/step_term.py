"""A method's batch-level term (CORAL's SupCon) over the features of the WHOLE step, added to the
loss of each micro-batch so that any number of processes and micro-batches gets the gradient one
process gets on the whole batch in one pass.

One micro-batch: the term is computed in that pass, on features gathered over the processes with
their gradient. Several: a pass without graph computes the term on every micro-batch's features
first, and each graph pass then adds <features, d term / d features> for its own rows. Dropout
masks are functions of the samples' keys, so the graph passes reproduce those features exactly.
"""

from __future__ import annotations

import torch

from coral_ft.models.denoiser import KeyedForward
from coral_ft.objectives import TrainBatch
from coral_ft.train.batches import moved
from coral_ft.train.regularizer import gather_with_grad  # the one gather of CORAL's features (also the API's)


class StepTerm:
    """`begin(micro, batch)` once per step, `added(m, features, loss)` in each micro-batch's pass,
    `log_into(logged)` after the last; a method without such a term leaves the loss as it is."""

    def __init__(self, objective, model, accelerator, micro_global: int, micro_local: int):
        self.objective, self.model, self.accelerator = objective, model, accelerator
        self.micro_global, self.micro_local = micro_global, micro_local
        self.term = None

    def begin(self, micro: list[TrainBatch], batch: TrainBatch) -> None:
        self.term, self.logged, self.feature_grads = None, {}, None
        if self.objective.batch_term is not None:
            self.batch = moved(batch, self.accelerator.device)  # the term reads the whole step's labels and timesteps
            if len(micro) > 1:
                self._gradients(micro)

    def added(self, m: int, features: torch.Tensor | None, loss: torch.Tensor) -> torch.Tensor:
        if self.objective.batch_term is None:
            return loss
        if self.feature_grads is None:  # this pass is the whole step: the term with its graph
            features = gather_with_grad(features) if self.accelerator.num_processes > 1 else features
            self.term, self.logged = self.objective.batch_term(features, self.batch)
            return loss + self.term
        return loss + (features.float() * self.feature_grads[m]).sum()

    def log_into(self, logged: dict[str, torch.Tensor]) -> None:
        if self.term is not None:
            logged["loss"] = logged["loss"] + self.term.detach().float()
            logged.update(self.logged)

    def _gradients(self, micro: list[TrainBatch]) -> None:
        """The term over every micro-batch's features (gathered over processes, no graph), and its
        gradient with respect to each of this process's micro-batches' feature rows."""
        acc = self.accelerator
        with torch.no_grad(), acc.autocast():
            features = [acc.gather(self.objective(KeyedForward(self.model, mb.keys), mb).features.float()) for mb in micro]
        features = torch.cat(features).requires_grad_(True)  # (B, D): global-batch order
        self.term, self.logged = self.objective.batch_term(features, self.batch)
        # DDP averages the processes' gradients: each scales its share up to keep the sum exact.
        grad = torch.autograd.grad(self.term, features)[0] * acc.num_processes
        mine = slice(acc.process_index * self.micro_local, (acc.process_index + 1) * self.micro_local)
        self.feature_grads = [grad[m * self.micro_global:(m + 1) * self.micro_global][mine] for m in range(len(micro))]
