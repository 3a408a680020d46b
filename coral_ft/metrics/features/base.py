"""The feature-network interface the metrics read images through, and shared batching.

A `FeatureExtractor` turns uint8 images (N, H, W, C) into features (N, D). Networks that also
classify (TF-Inception with its 1008-way layer) offer logits for the Inception Score. Tests and
the bench inject their own small extractors through the same interface; users only ever get the
real networks, loaded from weight files (see weights.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from coral_ft.errors import UserError
from coral_ft.metrics.features.resize import BatchResize


@runtime_checkable
class FeatureExtractor(Protocol):
    name: str  # e.g. "inception-2015-12-05/pool3"; recorded with every result
    weights_sha1: str  # hash of the weights file (or of the test network's parameters)

    def features(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 (N, D)."""
        ...


def logits_source(extractor) -> tuple[Callable | None, str | None]:
    """How to get classifier logits from an extractor: (function of (images, features), reason if none)."""
    if getattr(extractor, "logits_from_features", None) is not None and getattr(extractor, "has_logits", True):
        return (lambda images, feats: extractor.logits_from_features(feats)), None
    if getattr(extractor, "logits", None) is not None and getattr(extractor, "has_logits", True):
        return (lambda images, feats: extractor.logits(images)), None
    reason = getattr(extractor, "logits_unavailable_reason", None) or f"{extractor.name} has no classifier logits"
    return None, reason


def check_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) with C in {1, 3}; grayscale is repeated to RGB for ImageNet networks."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UserError(f"images must be uint8 (N, H, W, C) with 1 or 3 channels; got {images.dtype} {tuple(images.shape)}")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


class BatchedNetwork:
    """Shared loop of the ImageNet extractors: resize a batch, run the network on a device."""

    def __init__(self, resize: BatchResize, device: str | torch.device = "cpu", batch_size: int = 64):
        self.resize_batch = resize  # uint8 (B, H, W, 3) -> float (B, 3, S, S) in [0, 255] on the device
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = False  # a bar over the images (the CLI turns it on)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """float (B, 3, S, S) in [0, 255] -> network input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        from tqdm.auto import tqdm

        images = check_images(images)
        out = []
        with tqdm(total=len(images), desc=f"features ({self.name})", unit="img", dynamic_ncols=True,
                  disable=not (self.progress and len(images))) as bar:
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size]
                out.append(self.forward(self.prepare(self.resize_batch(batch, self.device))).float().cpu().numpy())
                bar.update(len(batch))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
