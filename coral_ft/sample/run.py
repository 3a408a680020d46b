"""Sampling at scale: N guided samples to one .npz, written in shards, resumable, multi-process.

`sample_to_npz` writes `OUT.shards/` beside `OUT.npz`: a `manifest.json` of the arguments that
decide the samples, and `shard-<first index>.npz` files each holding `indices`, `images` and
`labels` of one batch. A re-run with the same arguments generates only the indices no shard
holds yet; different arguments are refused (or `restart=True` starts over). Because sample i
depends on (seed, i) only (`coral_ft.sample.labels`), a re-run with a larger N reuses the
samples of the smaller one, and a batch size change is harmless.

Under `accelerate launch` the missing batches are dealt round-robin over the processes; each
writes its own shards (the output folder must be on a file system all processes see) and the
main process assembles the .npz once every process is done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from coral_ft.checkpoint.model import load_model
from coral_ft.data.batches import to_uint8
from coral_ft.errors import UserError
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.labels import make_labels, parse_label_spec, sample_seeds
from coral_ft.sample.samplers import SAMPLERS, sample

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.npz"


def shards_dir_for(out: Path) -> Path:
    """`samples.npz` -> `samples.shards/`."""
    return out.with_name(out.stem + ".shards")


def check_sampling_args(out, num, guidance, sampler, steps, batch_size, eta) -> Path:
    """Every user mistake that can be seen before a model is loaded, as one UserError."""
    out = Path(out)
    if out.suffix != ".npz":
        raise UserError(f"--out must name a .npz file; got {out}")
    if num <= 0:
        raise UserError(f"--num must be positive; got {num}")
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if steps <= 0:
        raise UserError(f"--steps must be positive; got {steps}")
    if batch_size <= 0:
        raise UserError(f"--batch-size must be positive; got {batch_size}")
    if guidance < 0:
        raise UserError(f"--guidance must be >= 0 (paper eq. 4, 0 = no guidance); got {guidance}")
    if not 0.0 <= eta <= 1.0:
        raise UserError(f"eta must be in [0, 1]; got {eta}")
    return out


def model_fingerprint(unet) -> str:
    """sha256 over the U-Net's parameter names and bytes: the identity of the weights sampled."""
    h = hashlib.sha256()
    for name, tensor in sorted(unet.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load(model, device):
    if isinstance(model, (str, Path)):
        return load_model(model, device)
    unet, scheduler, info = model  # already loaded (e.g. by a benchmark that samples twice)
    return unet.to(device).eval(), scheduler, info


def _check_manifest(folder: Path, manifest: dict, restart: bool) -> bool:
    """True when the existing shards belong to these arguments; UserError when they do not."""
    path = folder / MANIFEST
    if not path.is_file() or restart:
        return False
    old = json.loads(path.read_text())
    changed = sorted(k for k in manifest.keys() | old.keys() if old.get(k) != manifest.get(k))
    if changed:
        raise UserError(
            f"{folder} holds samples made with other arguments ({', '.join(changed)} differ); "
            "pass --restart to discard them, or choose another --out"
        )
    return True


def _done_indices(folder: Path, num: int) -> np.ndarray:
    """Boolean (num,): which sample indices some complete shard already holds."""
    done = np.zeros(num, dtype=bool)
    for shard in folder.glob(SHARD_GLOB):
        idx = np.load(shard)["indices"]
        done[idx[idx < num]] = True
    return done


def _write_npz(path: Path, **arrays) -> None:
    """Atomically: a shard or output is either complete on disk or absent."""
    # The temporary name must not match SHARD_GLOB: a run killed mid-write leaves it behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:  # a file object: np.savez appends no suffix
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _assemble(folder: Path, num: int) -> dict[str, np.ndarray]:
    images, labels = None, np.zeros(num, dtype=np.int64)
    for shard in sorted(folder.glob(SHARD_GLOB)):
        data = np.load(shard)
        keep = data["indices"] < num
        idx = data["indices"][keep]
        if images is None:
            images = np.zeros((num, *data["images"].shape[1:]), dtype=np.uint8)
        images[idx] = data["images"][keep]
        labels[idx] = data["labels"][keep]
    return {"images": images, "labels": labels}


def write_pngs(png_dir: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> None:
    """One folder per class (`003-cat/`), one PNG per sample named by its index."""
    from PIL import Image

    for c in np.unique(labels):
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in class_names[c])
        folder = Path(png_dir) / f"{c:03d}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == c):
            img = images[i]  # (H, W, C)
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i:06d}.png")


def sample_to_npz(
    model,
    out,
    num: int,
    guidance: float,
    sampler: str = "ddpm",
    steps: int = 100,
    labels: str = "uniform",
    batch_size: int = 256,
    seed: int = 0,
    png_dir=None,
    accelerator=None,
    *,
    eta: float = 0.0,
    restart: bool = False,
    progress: bool = False,
) -> Path:
    """Generate `num` samples (paper eq. 4 guidance `guidance`) into `out`; -> the .npz path.

    model: a run directory, a model folder, or an already loaded (unet, scheduler, ModelInfo).
    labels: 'uniform', 'balanced' or a class list (see `coral_ft.sample.labels`).
    accelerator: an `accelerate.Accelerator` to split the work over its processes; None: one
    process on the GPU when there is one.
    The .npz holds `images` (num, H, W, C) uint8 and `labels` (num,) int64, in sample order.
    """
    out = check_sampling_args(out, num, guidance, sampler, steps, batch_size, eta)
    device = accelerator.device if accelerator is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    barrier = accelerator.wait_for_everyone if accelerator is not None else (lambda: None)
    unet, scheduler, info = _load(model, device)
    if num_classes_of(unet) is None:
        where = f" {model}" if isinstance(model, (str, Path)) else ""
        raise UserError(f"the model{where} has no class embedding, so it cannot take class labels")
    parse_label_spec(labels, info.class_names)  # bad lists fail here, before any work
    all_labels = make_labels(labels, num, info.class_names, seed)  # (num,)

    folder = shards_dir_for(out)
    manifest = {
        "model": model_fingerprint(unet), "guidance": float(guidance), "sampler": sampler,
        "steps": steps if sampler == "ddim" else None, "eta": float(eta) if sampler == "ddim" else None,
        "labels": labels, "seed": seed, "scheduler": {k: v for k, v in scheduler.config.items() if not k.startswith("_")},
    }  # fmt: skip
    manifest = json.loads(json.dumps(manifest, default=str))  # as it reads back from disk
    resuming = _check_manifest(folder, manifest, restart)  # every process decides alike
    barrier()
    if rank == 0 and not resuming:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    barrier()

    missing = np.flatnonzero(~_done_indices(folder, num))
    batches = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
    for batch in batches[rank::world]:
        batch_labels = all_labels[torch.from_numpy(batch)]
        seeds = sample_seeds(seed, batch)
        x = sample(unet, scheduler, batch_labels, seeds, guidance, sampler, steps, eta, progress=progress)
        images = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
        _write_npz(folder / f"shard-{batch[0]:07d}.npz", indices=batch, images=images, labels=batch_labels.numpy())
    barrier()

    if rank == 0:
        arrays = _assemble(folder, num)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_npz(out, **arrays)
        if png_dir is not None:
            write_pngs(Path(png_dir), arrays["images"], arrays["labels"], info.class_names)
    barrier()
    return out
