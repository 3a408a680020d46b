"""A small classifier trained on the balanced real images, as a metric network for small data.

TF-Inception features mean little for 16x16 grey digits (and its weights may be absent on a CPU
box). For `digits-lt`, and for every data set at `--scale smoke`, the bench trains this small CNN
on the balanced real split instead (deterministic: fixed seed, fixed batch order, CPU), caches it
in the bench folder, and uses its penultimate layer as the feature space for FID / precision /
recall and its logits for IS and for the per-class accuracy of the samples (does a sample of
class c look like a c?). It follows the `FeatureExtractor` protocol of `coral_ft.metrics`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from coral_ft.data.longtail import select_per_class
from coral_ft.files import atomic_path

FEATURE_DIM = 64
EPOCHS = 30
MAX_TRAIN_IMAGES = 5000  # a balanced subsample beyond this; the digits (1,438) are used whole
BATCH = 64


def build_network(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, FEATURE_DIM), nn.ReLU(),
        nn.Linear(FEATURE_DIM, num_classes),
    )


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


class ClassifierFeatures:
    """FeatureExtractor: `features` (N, 64) from the penultimate layer, `logits` (N, C)."""

    def __init__(self, network: nn.Sequential, weights_sha1: str):
        self.network = network.eval()
        self.name = "bench-classifier/penultimate"
        self.weights_sha1 = weights_sha1

    @torch.no_grad()
    def _run(self, images: np.ndarray, upto: int) -> np.ndarray:
        outs = [self.network[:upto](to_input(images[i : i + 512])) for i in range(0, len(images), 512)]
        return torch.cat(outs).numpy().astype(np.float32) if outs else np.zeros((0, FEATURE_DIM), np.float32)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, len(self.network) - 1)

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, len(self.network))

    def logits_from_features(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.network[-1](torch.from_numpy(feats)).numpy()

    def per_class_accuracy(self, images: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float]:
        pred = self.logits(images).argmax(1)
        return [float((pred[labels == c] == c).mean()) if (labels == c).any() else float("nan") for c in range(num_classes)]


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0) -> nn.Sequential:
    """Adam, 30 epochs, fixed shuffles: the same weights on every run on the same machine."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = build_network(images.shape[-1], num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = to_input(images), torch.from_numpy(labels.astype(np.int64))
    for _ in range(EPOCHS):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), BATCH):
            idx = order[i : i + BATCH]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def load_or_train(path: Path, images: np.ndarray, labels: np.ndarray, num_classes: int) -> ClassifierFeatures:
    """The cached classifier at `path`, trained on (images, labels) uint8 NHWC the first time."""
    path = Path(path)
    if not path.is_file():
        if len(labels) > MAX_TRAIN_IMAGES:  # CIFAR at smoke scale: 50k images x 30 epochs is CPU-hours
            keep = select_per_class(labels, max(1, MAX_TRAIN_IMAGES // num_classes))
            images, labels = images[keep], labels[keep]
        net = train_classifier(images, labels, num_classes)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(net.state_dict(), tmp)
    return load_classifier(path, images.shape[-1], num_classes)


def load_classifier(path: Path, channels: int, num_classes: int) -> ClassifierFeatures:
    from coral_ft.errors import UserError

    path = Path(path)
    net = build_network(channels, num_classes)
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise UserError(f"classifier file not found: {path}") from None
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # another network's file, or not one at all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a classifier for {channels}-channel images of {num_classes} classes "
                        f"({first}); delete it to train one again") from None
    return ClassifierFeatures(net, hashlib.sha1(path.read_bytes()).hexdigest())
