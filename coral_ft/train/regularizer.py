"""CORAL in your own training loop: `CoralRegularizer` attaches to a diffusers U-Net and returns
the CORAL term of a batch, to add to your diffusion loss.

    coral = CoralRegularizer(unet, num_train_timesteps=1000, weight=0.01, tau_sc=0.12, tau_r=0.8)
    optimizer = torch.optim.Adam([*unet.parameters(), *coral.parameters()])
    pred = unet(scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample
    loss = F.mse_loss(pred, noise) + coral(labels, t)

It hooks the U-Net's `mid_block` (the bottleneck; `BottleneckTap`, the hook coral-ft's own
denoiser uses), owns the projection head (`ProjectionHead`, built as `coral-ft train` builds it)
and computes the term with `coral_term`, the function `coral-ft train`'s CORAL objective calls:
lambda(t)-weighted SupCon of the head's embeddings of the last forward's bottleneck, with the
batch's TRUE labels (not the guidance-dropped ones the U-Net was given) and timesteps.

Several processes (torch.distributed, e.g. under accelerate): the embeddings are gathered with
their gradient (`gather_with_grad`), labels and timesteps with them, so every process computes
the term of the whole global batch, as `coral-ft train` does. Each process must then give the
same number of samples (drop_last); prepare the regulariser with the U-Net
(`accelerator.prepare(unet, coral, optimizer)`), so its head's gradients are averaged too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coral_ft.checkpoint.model import load_head, save_head
from coral_ft.models.denoiser import BottleneckTap, build_head
from coral_ft.objectives.base import LossTerms
from coral_ft.objectives.coral import CoralSettings, coral_term


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's rows in process order, keeping the gradient (of a tensor that has
    one: embeddings, not labels): the backward pass sums what every process computes for this
    process's rows, so with DDP's averaging a term over the gathered rows gets its exact gradient."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def distributed() -> bool:
    """More than one process in an initialised torch.distributed group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class CoralRegularizer(nn.Module):
    """The CORAL term for any diffusers U-Net with a `mid_block` (UNet2DModel,
    UNet2DConditionModel, either wrapped by peft).

    Call it after each forward of the U-Net: `coral(labels, timesteps)` -> the scalar term (its
    logged parts in `last_terms`). Its parameters are the projection head's; train them with the
    U-Net's. `detach()` (or `remove()`) takes the hook off the U-Net; `save_head(folder)` and
    `load_head(folder)` write and read the head as `coral-ft train` does (RUN/head/).

    num_train_timesteps: T of the noise schedule (timesteps index 0..T-1, diffusers' convention);
    weight, tau_sc, tau_r: w, the SupCon temperature and lambda's decay temperature of the paper
    (lambda(t) = w exp((1 - t/T) / tau_r)); lambda_mode, supcon_impl: as `[objective.coral]`;
    head: the embedding size of the head built here (`model.head_dim`, average pooling), or a head
    (e.g. `coral_ft.models.denoiser.build_head(unet, 128, "flatten")`, `model.head_pooling`).
    """

    # Gather over processes: None whenever torch.distributed runs several; False keeps each
    # process's term to its own samples.
    gather: bool | None = None

    def __init__(self, unet: nn.Module, num_train_timesteps: int = 1000, weight: float = 0.01, tau_sc: float = 0.12,
                 tau_r: float = 0.8, *, lambda_mode: str = "per-anchor", supcon_impl: str = "fused",
                 head: nn.Module | int = 128):
        super().__init__()
        self.settings = CoralSettings(weight=weight, tau_sc=tau_sc, tau_r=tau_r, lambda_mode=lambda_mode,
                                      supcon_impl=supcon_impl)
        if int(num_train_timesteps) < 1:
            raise ValueError(f"num_train_timesteps must be at least 1, got {num_train_timesteps}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.head = build_head(unet, head) if isinstance(head, int) else head
        self.last_terms: LossTerms = {}
        self._tap: BottleneckTap | None = BottleneckTap(unet)  # not a submodule: parameters() is the head's

    def forward(self, labels: torch.Tensor, timesteps: torch.Tensor | int,
                bottleneck: torch.Tensor | None = None) -> torch.Tensor:
        """The CORAL term of the last U-Net forward's batch (or of `bottleneck` (B, C, h, w)):
        labels (B,) the TRUE class labels, timesteps (B,) or one int, the noise levels it was given."""
        h = self._take() if bottleneck is None else bottleneck
        z = self.head(h)  # (B, D) on the unit sphere
        labels = labels.to(z.device)
        t = torch.as_tensor(timesteps, device=z.device)
        t = t.expand(len(labels)) if t.dim() == 0 else t
        if len(labels) != len(z) or len(t) != len(z):
            raise ValueError(f"the bottleneck has {len(z)} samples, the labels {len(labels)} and the timesteps {len(t)}")
        if self.gather or (self.gather is None and distributed()):
            z, labels, t = gather_with_grad(z), gather_with_grad(labels), gather_with_grad(t)
        term, self.last_terms = self.terms(z, labels, t)
        return term

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The CORAL term of given embeddings (B, D), true labels (B,) and timesteps (B,)."""
        return self.terms(embeddings, labels, timesteps)[0]

    def terms(self, embeddings: torch.Tensor, labels: torch.Tensor,
              timesteps: torch.Tensor) -> tuple[torch.Tensor, LossTerms]:
        """(term, logged terms: supcon, contrastive, lambda_mean): what `coral-ft train` computes."""
        return coral_term(embeddings, labels, timesteps, self.num_train_timesteps, self.settings)

    def _take(self) -> torch.Tensor:
        if self._tap is None:
            raise RuntimeError("this CoralRegularizer was detached from its U-Net")
        h = self._tap.take()
        if h is None:
            raise RuntimeError("no bottleneck captured: call the U-Net on the batch before the regulariser")
        return h

    # -- attach, detach, save -----------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._tap is not None

    def detach(self) -> CoralRegularizer:
        """Take the hook off the U-Net (the head stays usable with `loss` or a given bottleneck)."""
        if self._tap is not None:
            self._tap.remove()
            self._tap = None
        return self

    remove = detach

    def save_head(self, folder: str | Path) -> Path:
        """Write the head (head.safetensors + head.json), as a run's RUN/head/."""
        save_head(folder, self.head)
        return Path(folder)

    def load_head(self, folder: str | Path) -> CoralRegularizer:
        """Read a head written by `save_head` or `coral-ft train` (RUN/head/) into this one, in
        place (an optimiser holding the parameters keeps them)."""
        loaded = load_head(folder)
        if loaded is None:
            raise FileNotFoundError(f"no projection head in {folder}")
        if loaded.pooling != getattr(self.head, "pooling", loaded.pooling):
            raise ValueError(f"the head in {folder} pools by {loaded.pooling!r}, this one by {self.head.pooling!r}")
        self.head.load_state_dict(loaded.state_dict())
        return self

    def extra_repr(self) -> str:
        s = self.settings
        return (f"num_train_timesteps={self.num_train_timesteps}, weight={s.weight}, tau_sc={s.tau_sc}, "
                f"tau_r={s.tau_r}, lambda_mode={s.lambda_mode!r}, attached={self.attached}")


__all__ = ["CoralRegularizer", "gather_with_grad"]
