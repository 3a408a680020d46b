"""Training checkpoints: plain files, written atomically, the last K kept.

A checkpoint is a folder `checkpoints/step-0001000/` holding
- `trainable.safetensors`: every parameter that trains (the whole U-Net and head from scratch;
  only adapters, class embedding and head under LoRA: frozen base weights are rebuilt from the
  base on resume, so checkpoints stay small),
- `ema.safetensors`: the EMA of the trainable U-Net parameters,
- `optimizer.pt`: the optimiser state (tensors and numbers only: loads with weights_only=True),
- `state.json`: step, learning-rate scheduler and EMA counters.
The data order and all per-step randomness are functions of (seed, step) (coral_ft.data.batches),
so `step` is the whole data position. The folder is written under a temporary name and renamed
into place, so a crash mid-write never leaves a half checkpoint under a real name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from coral_ft.errors import UserError
from coral_ft.files import respect_umask

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _tensors(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in named.items()}


def save_checkpoint(
    folder: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    optimizer_state: dict,
    state: dict,
    keep: int,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    tmp = folder / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_tensors(trainable), tmp / "trainable.safetensors")
    save_file(_tensors(ema), tmp / "ema.safetensors")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    respect_umask(tmp)
    if final.exists():  # re-saving the same step (e.g. the final save after a periodic one)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path) -> dict:
    """-> {"trainable", "ema", "optimizer", "state"} from a checkpoint folder."""
    try:
        return {
            "trainable": load_file(path / "trainable.safetensors"),
            "ema": load_file(path / "ema.safetensors"),
            "optimizer": torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
            "state": json.loads((path / "state.json").read_text()),
        }
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} is unreadable ({str(exc).splitlines()[0]}); delete it to resume from an older one") from None
