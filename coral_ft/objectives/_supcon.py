"""Per-anchor supervised contrastive loss (Khosla et al. 2020; paper eq. 5).

pytorch-metric-learning computes the loss; its `DoNothingReducer` gives one value per anchor so
that each anchor can carry its own time weight (paper Algorithm 1 draws t per sample).
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import SupConLoss
from pytorch_metric_learning.reducers import DoNothingReducer


def has_positive(labels: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the anchor shares its label with at least one other sample in the batch."""
    same = labels[:, None] == labels[None, :]
    return same.sum(dim=1) > 1


def supcon_per_anchor(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B,) SupCon loss of each anchor; 0 for anchors without a positive (they carry no signal)."""
    loss_fn = SupConLoss(temperature=temperature, reducer=DoNothingReducer())
    losses = loss_fn.compute_loss(embeddings.float(), labels, None, embeddings.float(), labels)["loss"]["losses"]
    if not torch.is_tensor(losses):  # the library returns a plain 0 when no pair is positive
        return embeddings.new_zeros(embeddings.shape[0], dtype=torch.float32)
    return losses * has_positive(labels).to(losses.dtype)
