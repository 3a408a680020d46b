"""Diffusers U-Nets on disk: where one is (folder, run directory, pipeline, cached hub ID) and
how it loads with its own class.

Supported: `UNet2DModel` and `UNet2DConditionModel` folders, given as
- a model folder (`config.json` + weights), a coral-ft run directory (`RUN/model/`), or a
  pipeline folder whose U-Net sits in `unet/` (the Stable-Diffusion layout), or
- a hub ID (`owner/name`) already in the local Hugging Face cache: nothing is downloaded, so
  everything works offline and says clearly when a model is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from diffusers import UNet2DConditionModel, UNet2DModel
from torch import nn

from coral_ft.errors import UserError

UNET_CLASSES = {"UNet2DModel": UNet2DModel, "UNet2DConditionModel": UNet2DConditionModel}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Where a U-Net's config.json may sit below a given path: a run directory, a pipeline, itself.
UNET_SUBDIRS = ("model", "unet", ".")
LORA_MARKER = "adapter_config.json"


def unet_class_name(folder: Path) -> str | None:
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


def find_unet_folder(path: Path) -> Path:
    """The folder below `path` that holds a supported U-Net config."""
    for sub in UNET_SUBDIRS:
        cand = (path / sub).resolve()
        if not (cand / "config.json").is_file():
            continue
        if (cand / LORA_MARKER).is_file():
            raise UserError(
                f"base {cand} is a LoRA fine-tune (adapters only); merge it first with "
                f"`coral-ft export {path} --merge --out DIR` and pass DIR as --base"
            )
        name = unet_class_name(cand)
        if name in UNET_CLASSES:
            return cand
        raise UserError(f"base {cand} holds a {name or 'unreadable'} config; expected one of {', '.join(UNET_CLASSES)}")
    raise UserError(f"no U-Net in {path}: expected config.json in it, in {path}/model/ (a run) or in {path}/unet/ (a pipeline)")


def hub_snapshot(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """The local snapshot folder of a hub model, without touching the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except Exception as exc:  # LocalEntryNotFoundError and friends: all mean "not cached here"
        raise UserError(
            f"hub model {repo_id!r} is not in the local Hugging Face cache ({type(exc).__name__}); "
            f"download it where there is a network (`hf download {repo_id}`) and copy "
            "the cache here, or pass a local model folder"
        ) from None


def resolve_unet_folder(spec: str, cache_dir: str | Path | None = None) -> Path:
    """A U-Net given as a folder, run directory or cached hub ID -> its U-Net folder."""
    path = Path(spec).expanduser()
    if path.exists():
        return find_unet_folder(path)
    missing = missing_local_folder(spec)
    if HUB_ID.match(spec) and not spec.startswith((".", "~")):
        try:
            snapshot = hub_snapshot(spec, cache_dir)
        except UserError:
            if missing:  # runs/nope, where runs/ is a folder here: a mistyped path, not a hub model
                raise UserError(missing) from None
            raise
        return find_unet_folder(snapshot)
    raise UserError(missing or f"{spec!r} not found: give a diffusers model folder, a coral-ft run directory or a cached hub ID (owner/name)")


def missing_local_folder(spec: str) -> str | None:
    """What is missing when `spec` reads as a local path (it starts with /, ./, ../ or ~, or its
    first part is a folder here) that does not exist; None when it does not read as one."""
    path = Path(spec).expanduser()
    if not spec.startswith(("/", ".", "~")) and not (path.parts and Path(path.parts[0]).is_dir()):
        return None
    have = next((p for p in path.parents if p.exists()), Path("."))  # a relative path's last parent is "."
    where = "this folder" if have == Path(".") else have.as_posix().rstrip("/") + "/"
    return f"local folder {spec} not found: {where} has no {path.relative_to(have).parts[0]!r}"


def load_unet(folder: Path) -> nn.Module:
    """Read the U-Net in `folder` (as found by `find_unet_folder`) with its own class."""
    cls = UNET_CLASSES.get(unet_class_name(folder) or "UNet2DModel", UNet2DModel)
    try:
        unet = cls.from_pretrained(folder)
    except Exception as exc:  # a truncated or corrupt weights file surfaces as many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load the U-Net in {folder}: {first}") from None
    check_supported(unet, folder)
    return unet


def check_supported(unet: nn.Module, folder: Path) -> None:
    cfg = unet.config
    if getattr(cfg, "addition_embed_type", None):
        raise UserError(f"U-Net {folder} needs added conditioning ({cfg.addition_embed_type}, SDXL-style); not supported")
    if getattr(cfg, "class_embed_type", None) is not None:
        raise UserError(f"U-Net {folder} has a '{cfg.class_embed_type}' class embedding; only a learned label table is supported")
    if getattr(cfg, "class_embeddings_concat", False):
        raise UserError(f"U-Net {folder} concatenates class embeddings; only added class embeddings are supported")
    if not isinstance(getattr(cfg, "cross_attention_dim", 0) or 0, int):
        raise UserError(f"U-Net {folder} has per-block cross-attention sizes; one cross_attention_dim is supported")


def sample_size_of(unet: nn.Module) -> int:
    size = unet.config.sample_size
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise UserError(f"the U-Net's sample size {tuple(size)} is not square; only square images are supported")
        size = size[0]
    return int(size)
