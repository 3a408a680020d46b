"""How images are resized to a feature network's input size: the choice that moves FID at 32x32.

- `clean` (clean-fid's default): PIL bicubic on float pixels, one image at a time (threads).
- `legacy-pytorch` (clean-fid's `legacy_pytorch`; the peers' and the paper's FID): pixels as float,
  `F.interpolate(..., mode="bilinear", align_corners=False)` on the whole batch, on the network's
  device. The peers then scale [0, 1] to [-1, 1]; the Inception extractor does so in this mode.

Both return float (B, 3, S, S) in [0, 255]. FIDs computed with different resizes do not compare,
so every result and every reference statistics file records its resize.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from cleanfid.resize import make_resizer

from coral_ft.metrics.registry import RESIZES

# PIL resizes outside the GIL, so threads spread the per-image resize over the cores.
RESIZE_THREADS = min(8, os.cpu_count() or 1)

BatchResize = Callable[[np.ndarray, torch.device], torch.Tensor]


def pil_bicubic(size: int) -> BatchResize:
    """clean-fid's "clean" resize: uint8 (B, H, W, 3) -> float (B, 3, size, size) in [0, 255]."""
    one = make_resizer("PIL", False, "bicubic", (size, size))  # uint8 (H, W, 3) -> float (S, S, 3)

    def resize(images: np.ndarray, device: torch.device) -> torch.Tensor:
        with ThreadPoolExecutor(RESIZE_THREADS) as pool:
            out = np.stack(list(pool.map(one, images)))  # (B, S, S, 3)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device, torch.float32)

    return resize


def torch_bilinear(size: int) -> BatchResize:
    """The peers' resize on a whole batch: bilinear, align_corners=False, float pixels."""

    def resize(images: np.ndarray, device: torch.device) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 255)

    return resize


def make_resize(mode: str, size: int) -> BatchResize:
    if mode == "clean":
        return pil_bicubic(size)
    if mode == "legacy-pytorch":
        return torch_bilinear(size)
    raise ValueError(f"unknown resize {mode!r}; choose from {', '.join(RESIZES)}")
