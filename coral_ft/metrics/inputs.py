"""What a metric computation sees: one feature network's view of the samples and of the reference."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from coral_ft.metrics.fid import gaussian_stats
from coral_ft.metrics.reference import NetworkStats


@dataclass(frozen=True)
class MetricInputs:
    features: np.ndarray  # (N, D) the samples through the computation's network
    reference: NetworkStats  # the reference through the same network: mu, sigma, features, k-NN radii
    labels: np.ndarray | None  # (N,) sample labels
    reference_labels: np.ndarray  # (M,)
    class_names: list[str]
    images: np.ndarray  # (N, H, W, C) uint8 samples (IS asks the network for logits)
    network: Any  # the feature network (name, weights_sha1, features(), maybe logits())
    k: int = 3  # precision/recall neighbours
    device: str = "cpu"
    seed: int = 0  # KID subsets and PRD clusterings
    prd_runs: int = 10

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, classes) -> MetricInputs:
        """The same view restricted to some classes, samples and reference alike (per-group metrics).
        The reference's statistics and radii are those of the subset, recomputed."""
        mine, theirs = np.isin(self.labels, classes), np.isin(self.reference_labels, classes)
        ref_feats = self.reference.features[theirs]
        mu, sigma = gaussian_stats(ref_feats) if len(ref_feats) >= 2 else (None, None)
        ref = replace(self.reference, mu=mu, sigma=sigma, features=ref_feats, radii={})
        return replace(self, features=self.features[mine], reference=ref, labels=self.labels[mine],
                       reference_labels=self.reference_labels[theirs], images=self.images[mine])
