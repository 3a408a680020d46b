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

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from coral_ft.checkpoint.model import load_model
from coral_ft.data.batches import to_uint8
from coral_ft.errors import UserError
from coral_ft.files import atomic_path
from coral_ft.models.lora import weights_fingerprint
from coral_ft.models.presets import num_classes_of
from coral_ft.sample.labels import make_labels, sample_seeds
from coral_ft.sample.samplers import resolved_steps, sample

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.npz"


def shards_dir_for(out: Path) -> Path:
    """`samples.npz` -> `samples.shards/`."""
    return out.with_name(out.stem + ".shards")


def check_output(out, num: int) -> Path:
    """Mistakes that can be seen before a model is loaded (the settings validate themselves)."""
    out = Path(out)
    if out.suffix != ".npz":
        raise UserError(f"--out must name a .npz file; got {out}")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {out} exists and is not a file; choose another path")
    if num <= 0:
        raise UserError(f"--num must be positive; got {num}")
    return out


def _load(model, device):
    if isinstance(model, (str, Path)):
        return load_model(model, device)
    unet, scheduler, info = model  # already loaded (e.g. by a benchmark that samples twice)
    return unet.to(device).eval(), scheduler, info


def _manifest(unet, scheduler, settings, steps: int) -> dict:
    """The arguments that decide the samples, as manifest.json reads back."""
    manifest = {
        "model": weights_fingerprint(unet),  # the identity of the weights sampled
        "guidance": float(settings.guidance), "sampler": settings.sampler,
        "steps": steps, "eta": float(settings.eta), "clip_x0": settings.clip_x0, "labels": settings.labels,
        "seed": settings.seed, "precision": settings.precision,
        "scheduler": {k: v for k, v in scheduler.config.items() if not k.startswith("_")},
    }  # fmt: skip
    return json.loads(json.dumps(manifest, default=str))


def _open_shards(folder: Path, manifest: dict, restart: bool, rank: int, barrier) -> None:
    """Keep the shards made with these arguments (a UserError when they were made with others),
    else start the folder anew; every process decides alike."""
    path = folder / MANIFEST
    resuming = path.is_file() and not restart
    if resuming:
        old = json.loads(path.read_text())
        changed = sorted(k for k in manifest.keys() | old.keys() if old.get(k) != manifest.get(k))
        if changed:
            raise UserError(
                f"{folder} holds samples made with other arguments ({', '.join(changed)} differ); "
                "pass --restart to discard them, or choose another --out"
            )
    barrier()
    if rank == 0 and not resuming:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    barrier()


def _done_indices(folder: Path, num: int) -> np.ndarray:
    """Boolean (num,): which sample indices some complete shard already holds."""
    done = np.zeros(num, dtype=bool)
    for shard in folder.glob(SHARD_GLOB):
        idx = np.load(shard)["indices"]
        done[idx[idx < num]] = True
    return done


def _write_npz(path: Path, **arrays) -> None:
    """Atomically: a shard or output is either complete on disk or absent."""
    with atomic_path(path) as tmp:  # a dot name: SHARD_GLOB never matches it
        np.savez(tmp, **arrays)


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


def sample_to_npz(model, out, num: int, settings, *, png_dir=None, accelerator=None, restart: bool = False,
                  progress: bool = False) -> Path:
    """Generate `num` samples into `out` as `settings` (a SampleConfig) say; -> the .npz path.

    model: a run directory, a model folder, or an already loaded (unet, scheduler, ModelInfo).
    accelerator: an `accelerate.Accelerator` to split the work over its processes; None: one
    process on the GPU when there is one.
    The .npz holds `images` (num, H, W, C) uint8 and `labels` (num,) int64, in sample order, and
    `settings`: the resolved sampling settings as JSON.
    """
    out = check_output(out, num)
    device = accelerator.device if accelerator is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    barrier = accelerator.wait_for_everyone if accelerator is not None else (lambda: None)
    unet, scheduler, info = _load(model, device)
    if num_classes_of(unet) is None:
        where = f" {model}" if isinstance(model, (str, Path)) else ""
        raise UserError(f"the model{where} has no class embedding, so it cannot take class labels")
    all_labels = make_labels(settings.labels, num, info.class_names, settings.seed)  # (num,); bad lists fail here
    steps = resolved_steps(scheduler, settings.sampler, settings.steps)

    folder, manifest = shards_dir_for(out), _manifest(unet, scheduler, settings, steps)
    _open_shards(folder, manifest, restart, rank, barrier)
    net = torch.compile(unet, mode=settings.compile_mode) if settings.compile else unet
    missing = np.flatnonzero(~_done_indices(folder, num))
    mine = [missing[i : i + settings.batch_size] for i in range(0, len(missing), settings.batch_size)][rank::world]
    drawn = sum(len(b) for b in mine)
    done = num - len(missing) if world == 1 else 0  # other processes' shares are not this bar's
    # One bar over every sample of the run (with its ETA), advanced a fraction per denoising step.
    with tqdm(total=done + drawn, initial=done, desc=f"sampling ({steps} steps)", unit="img", dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]", disable=not progress) as bar, \
            tf32(settings.tf32 and torch.device(device).type == "cuda"):

        def tick(i, t, x) -> None:  # a denoising step of `batch`: its share of the batch's samples
            bar.update(len(batch) / steps)

        for batch in mine:
            batch_labels = all_labels[torch.from_numpy(batch)]
            x = sample(net, scheduler, batch_labels, sample_seeds(settings.seed, batch), settings, callback=tick)
            images = to_uint8(x).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
            _write_npz(folder / f"shard-{batch[0]:07d}.npz", indices=batch, images=images, labels=batch_labels.numpy())
    barrier()
    # how many samples each process drew this call: the record that every process took its share
    drawn = [drawn]
    if world > 1:
        drawn = accelerator.gather(torch.tensor(drawn, device=device)).tolist()

    if rank == 0:
        arrays = _assemble(folder, num)
        out.parent.mkdir(parents=True, exist_ok=True)
        resolved = {**manifest, "num": num, "model_path": str(model) if isinstance(model, (str, Path)) else None,
                    "processes": world, "drawn_per_process": drawn}
        _write_npz(out, **arrays, settings=np.array(json.dumps(resolved)))
        if png_dir is not None:
            write_pngs(Path(png_dir), arrays["images"], arrays["labels"], info.class_names)
    barrier()
    return out


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matmuls and convolutions for the block only: torch's switches are global, so they are
    put back as they were (a library call leaves the process's settings alone)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def read_settings(path) -> dict | None:
    """The resolved sampling settings recorded in a samples .npz (None for files from elsewhere)."""
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["settings"])) if "settings" in f.files else None
