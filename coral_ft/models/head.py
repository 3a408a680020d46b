"""The CORAL projection head: bottleneck features -> L2-normalised embedding (paper section 3).

Global average pooling, one Linear layer, L2 normalisation ("a single dense layer followed by
normalization"). It exists only for training: the exported model has no head, so sampling costs
nothing extra.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    def __init__(self, in_channels: int, dim: int = 128, pooling: str = "avg", spatial: int = 1):
        super().__init__()
        if pooling not in ("avg", "flatten"):
            raise ValueError(f"pooling must be 'avg' or 'flatten', got {pooling!r}")
        self.pooling = pooling
        in_features = in_channels if pooling == "avg" else in_channels * spatial * spatial
        self.proj = nn.Linear(in_features, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (B, C, h, w) bottleneck features -> (B, dim) on the unit sphere
        v = h.mean(dim=(2, 3)) if self.pooling == "avg" else h.flatten(1)
        return F.normalize(self.proj(v), dim=1)
