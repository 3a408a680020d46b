"""Bottleneck features of real images, noised to chosen timesteps (the input of paper Figs. 1, 9-13).

Each image x0 is noised to x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (paper eq. 1, the
forward process of section 2.1) with the model's own schedule (or, with `latents.noised = false`,
given clean with the timestep, as the official code's plots), passed through the U-Net with its
TRUE label (a conditional pass, as in training) or the null label, and the output of
`unet.mid_block` is taken by the `Denoiser` hook. Two kinds of features come out:

- `bottleneck`: the mid-block output averaged over its spatial positions, (N, C_mid);
- `embedding`: the projection head's L2-normalised output, (N, D), when the run has a head.

Reproducibility: the subsample is a seeded choice per class, and the noise of image i is drawn
from a generator seeded by (seed, i), so every model and every timestep sees the same eps for the
same image, and the result does not depend on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import load_head, load_model, resolve_model_dir
from coral_ft.config import LATENT_CONDITIONS
from coral_ft.data.batches import derived_seed, to_model_range
from coral_ft.errors import UserError
from coral_ft.models.denoiser import Denoiser
from coral_ft.models.presets import null_label, num_classes_of
from coral_ft.models.schedule import ForwardProcess

FEATURE_KINDS = ("bottleneck", "embedding")
NOISE_STREAM = 7  # keeps the noise seeds apart from the subsample seed


@dataclass
class LatentModel:
    name: str
    path: Path
    denoiser: Denoiser
    process: ForwardProcess  # the model's own scheduler as q(x_t | x_0)

    @property
    def has_head(self) -> bool:
        return self.denoiser.head is not None


def find_head_dir(path: str | Path) -> Path | None:
    """The run's head/ for a run directory or its model/ folder (the head is the EMA one)."""
    model_dir = resolve_model_dir(path)
    for run in (RunDir(path), RunDir(model_dir.parent)):
        if run.head.is_dir():
            return run.head
    return None


def load_latent_model(path: str | Path, name: str | None = None, device: str | torch.device = "cpu") -> LatentModel:
    """U-Net (+ head when the run saved one) and its noise schedule, from a run or model folder."""
    unet, scheduler, _ = load_model(path, device)
    head_dir = find_head_dir(path)
    head = load_head(head_dir) if head_dir is not None else None
    denoiser = Denoiser(unet, head).to(device).eval()  # the U-Net is on the device already: this moves the head
    return LatentModel(name or default_model_name(path), Path(path), denoiser, ForwardProcess(scheduler))


def default_model_name(path: str | Path) -> str:
    """The run directory's name (`runs/coral-lt/model` -> `coral-lt`)."""
    path = Path(path).resolve()
    return path.parent.name if path.name == "model" else path.name


def check_compatible(model: LatentModel, images: torch.Tensor, num_classes: int, timesteps: list[int]) -> None:
    """Raise a one-line UserError when the model cannot embed these images at these timesteps."""
    cfg = model.denoiser.unet.config
    size = cfg.sample_size[0] if isinstance(cfg.sample_size, (tuple, list)) else cfg.sample_size
    _, channels, height, _ = images.shape
    if (cfg.in_channels, size) != (channels, height):
        raise UserError(
            f"model {model.name} takes {cfg.in_channels}x{size}x{size} images but the data set has "
            f"{channels}x{height}x{height}; pick the data set the model was trained on"
        )
    model_classes = num_classes_of(model.denoiser.unet)
    if model_classes is not None and model_classes != num_classes:
        raise UserError(f"model {model.name} has {model_classes} classes but the data set has {num_classes}")
    bad = [t for t in timesteps if not 0 <= t < model.process.num_train_timesteps]
    if bad:
        raise UserError(f"timesteps {bad} are outside 0..{model.process.num_train_timesteps - 1} of model {model.name}")


def sample_noise(shape: tuple[int, ...], sample_ids: np.ndarray, seed: int) -> torch.Tensor:
    """(B, C, H, W) standard normal noise; row i comes from a generator seeded by (seed, id_i)."""
    rows = []
    for i in sample_ids:
        g = torch.Generator().manual_seed(derived_seed(seed, int(i), NOISE_STREAM))
        rows.append(torch.randn(shape[1:], generator=g))
    return torch.stack(rows)


@torch.no_grad()
def extract_features(model: LatentModel, images: torch.Tensor, labels: torch.Tensor, settings,
                     bar=None) -> dict[int, dict[str, np.ndarray]]:
    """timestep -> feature kind -> (N, D) float32 array, for uint8 `images` (N, C, H, W).

    settings: a LatentsConfig (timesteps, seed, batch_size, condition, noised). `labels` are the
    true labels; the U-Net gets them (`condition="true"`) or the null label (`"null"`); an
    unconditional U-Net gets none.
    """
    if settings.condition not in LATENT_CONDITIONS:
        raise UserError(f"condition must be one of {', '.join(LATENT_CONDITIONS)}; got {settings.condition!r}")
    denoiser = model.denoiser
    device = next(denoiser.parameters()).device
    dtype = next(denoiser.parameters()).dtype
    conditional = num_classes_of(denoiser.unet) is not None
    out: dict[int, dict[str, list[np.ndarray]]] = {t: {k: [] for k in FEATURE_KINDS} for t in settings.timesteps}
    for start in range(0, len(images), settings.batch_size):
        ids = np.arange(start, min(start + settings.batch_size, len(images)))
        x0 = to_model_range(images[ids]).to(device, dtype)  # (B, C, H, W) in [-1, 1]
        noise = sample_noise(tuple(x0.shape), ids, settings.seed).to(device, dtype)
        y = labels[ids].to(device) if conditional else None
        if y is not None and settings.condition == "null":
            y = torch.full_like(y, null_label(denoiser.unet))
        for t in settings.timesteps:
            tt = torch.full((len(ids),), t, device=device, dtype=torch.long)
            x_t = model.process.add_noise(x0, noise, tt) if settings.noised else x0  # paper eq. 1
            res = denoiser(x_t, tt, y)
            out[t]["bottleneck"].append(res.bottleneck.float().mean(dim=(2, 3)).cpu().numpy())  # (B, C_mid)
            if res.embedding is not None:
                out[t]["embedding"].append(res.embedding.float().cpu().numpy())  # (B, D)
            if bar is not None:
                bar.update(len(ids))
    return {t: {k: np.concatenate(v) for k, v in kinds.items() if v} for t, kinds in out.items()}
