"""Shared fixtures: tiny configs, tiny models and the shared real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Two cores: keep torch from oversubscribing them when tests run beside other work.
torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR10_ROOT = Path(os.environ.get("CORAL_FT_CIFAR10", SHARED_DATA / "cifar10"))


def run_cli(args, capsys):
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    from coral_ft.cli.app import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> bool:
    """stderr says one thing, an `error: ...` line (besides the note of a recipe a data set name brings)."""
    said = [line for line in err.strip().splitlines() if not line.startswith("no --recipe:")]
    return len(said) == 1 and said[0].startswith("error: ")


def tiny_overrides(**extra) -> dict:
    """Dotted overrides for a seconds-long CPU run on the embedded digits."""
    base = {
        "data.dataset": "digits-lt",
        "data.imbalance": 0.1,
        "model.preset": "tiny",
        "train.max_steps": 4,
        "train.batch_size": 16,
        "train.warmup_steps": 2,
        "train.log_every": 2,
        "train.checkpoint_every": 2,
        "train.sample_every": 1000,
        "train.sample_grid": 2,
        "sample.sampler": "ddim",
        "sample.steps": 3,
    }
    base.update(extra)
    return base


@pytest.fixture
def tiny_config():
    from coral_ft.config import load_config

    def make(**extra):
        return load_config(None, tiny_overrides(**extra))

    return make


@pytest.fixture
def cifar10_root() -> Path:
    if not (CIFAR10_ROOT / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"CIFAR-10 pickles not found at {CIFAR10_ROOT} (set CORAL_FT_CIFAR10)")
    return CIFAR10_ROOT


@pytest.fixture
def tiny_unet():
    from coral_ft.models.presets import build_unet

    torch.manual_seed(0)
    return build_unet("tiny", 16, 1, 10)


# Fine-tuning bases: small diffusers U-Nets saved with save_pretrained, 1x16x16 like digits-lt.
BASE_KINDS = ("unet2d-uncond", "unet2d-cond", "cross-attn")


def build_base(kind: str, num_classes: int = 10, sample_size: int = 16, channels: int = 1):
    from diffusers import UNet2DConditionModel

    from coral_ft.models.presets import build_unet

    torch.manual_seed(0)
    if kind == "unet2d-uncond":
        return build_unet("tiny", sample_size, channels, None)
    if kind == "unet2d-cond":
        return build_unet("tiny", sample_size, channels, num_classes)
    if kind == "cross-attn":  # a Stable-Diffusion-style U-Net, unconditional on labels
        return UNet2DConditionModel(
            sample_size=sample_size, in_channels=channels, out_channels=channels,
            block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16, attention_head_dim=8,
        )  # fmt: skip
    raise ValueError(kind)


@pytest.fixture
def saved_base(tmp_path):
    """kind -> folder holding that base, written with save_pretrained."""

    def make(kind: str, **kwargs) -> Path:
        folder = tmp_path / f"base-{kind}"
        build_base(kind, **kwargs).save_pretrained(folder)
        return folder

    return make


def save_tiny_model(folder: Path, num_train_timesteps: int = 20, num_classes: int | None = 10, seed: int = 0) -> Path:
    """A tiny 1x16x16 model folder as coral-ft exports it; a short schedule keeps DDPM cheap."""
    from coral_ft.checkpoint.model import ModelInfo, save_model
    from coral_ft.models.presets import build_unet
    from coral_ft.models.schedule import make_scheduler

    torch.manual_seed(seed)
    unet = build_unet("tiny", 16, 1, num_classes)
    names = [f"class{i}" for i in range(num_classes or 0)]
    return save_model(folder, unet, make_scheduler(num_train_timesteps), ModelInfo(names))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """One saved tiny class-conditional model per test module (read-only: do not modify it)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; on a loaded 2-core machine two threads can be ~40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
