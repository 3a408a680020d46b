"""Pretrained bases to fine-tune: where they are, what they are, whether they fit the data.

A base is a diffusers `UNet2DModel` or `UNet2DConditionModel` folder, given as
- a model folder (`config.json` + weights), a coral-ft run directory (`RUN/model/`), or a
  pipeline folder whose U-Net sits in `unet/` (the Stable-Diffusion layout), or
- a hub ID (`owner/name`) already in the local Hugging Face cache: nothing is downloaded, so
  fine-tuning works offline and says clearly when the model is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from diffusers import UNet2DConditionModel, UNet2DModel
from torch import nn

from coral_ft.errors import ConfigError, UserError

UNET_CLASSES = {"UNet2DModel": UNet2DModel, "UNet2DConditionModel": UNet2DConditionModel}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Where a U-Net's config.json may sit below a given path: a run directory, a pipeline, itself.
UNET_SUBDIRS = ("model", "unet", ".")
LORA_MARKER = "adapter_config.json"


def _unet_class_name(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("_class_name")
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
        name = _unet_class_name(cand)
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
            f"download it where there is a network (`huggingface-cli download {repo_id}`) and copy "
            "the cache here, or pass a local model folder as --base"
        ) from None


def resolve_base(spec: str, cache_dir: str | Path | None = None) -> Path:
    """A base given as a folder, run directory or cached hub ID -> its U-Net folder."""
    path = Path(spec).expanduser()
    if path.exists():
        return find_unet_folder(path)
    if HUB_ID.match(spec):
        return find_unet_folder(hub_snapshot(spec, cache_dir))
    raise UserError(f"base {spec!r} not found: give a diffusers model folder, a coral-ft run directory or a cached hub ID (owner/name)")


def load_base_unet(folder: Path) -> nn.Module:
    """Read the U-Net in `folder` (as found by `find_unet_folder`) with its own class."""
    cls = UNET_CLASSES[_unet_class_name(folder)]
    try:
        unet = cls.from_pretrained(folder)
    except Exception as exc:  # a truncated or corrupt weights file surfaces as many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load the base U-Net in {folder}: {first}") from None
    _check_supported(unet, folder)
    return unet


def _check_supported(unet: nn.Module, folder: Path) -> None:
    cfg = unet.config
    if getattr(cfg, "addition_embed_type", None):
        raise UserError(f"base {folder} needs added conditioning ({cfg.addition_embed_type}, SDXL-style); not supported")
    if getattr(cfg, "class_embed_type", None) is not None:
        raise UserError(f"base {folder} has a '{cfg.class_embed_type}' class embedding; only a learned label table is supported")
    if getattr(cfg, "class_embeddings_concat", False):
        raise UserError(f"base {folder} concatenates class embeddings; only added class embeddings are supported")
    if not isinstance(getattr(cfg, "cross_attention_dim", 0) or 0, int):
        raise UserError(f"base {folder} has per-block cross-attention sizes; one cross_attention_dim is supported")


def sample_size_of(unet: nn.Module) -> int:
    size = unet.config.sample_size
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise UserError(f"the base's sample size {tuple(size)} is not square; only square images are supported")
        size = size[0]
    return int(size)


def check_base_fits(unet: nn.Module, image_size: int, channels: int, num_classes: int, where: str) -> None:
    """Sample size, channels and class count of the base against the data (before any training)."""
    cfg = unet.config
    if sample_size_of(unet) != image_size:
        raise ConfigError(f"base {where} makes {sample_size_of(unet)}x{sample_size_of(unet)} images but the data is {image_size}x{image_size}; choose a matching base or data set")
    if cfg.in_channels != channels or cfg.out_channels != channels:
        raise ConfigError(f"base {where} has {cfg.in_channels} input / {cfg.out_channels} output channels but the data has {channels}")
    rows = getattr(cfg, "num_class_embeds", None)
    if rows and rows != num_classes + 1:
        raise ConfigError(
            f"base {where} has a class embedding for {rows - 1} classes (+ null label) but the data has {num_classes} classes; "
            "use a base trained on the same classes, or an unconditional base"
        )


SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end")


def _base_scheduler_config(folder: Path) -> dict | None:
    # Beside the U-Net (coral-ft / plain folders) or in the pipeline's scheduler/ folder.
    for cand in (folder / "scheduler_config.json", folder.parent / "scheduler" / "scheduler_config.json"):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except ValueError:
                return None
    return None


def check_base_schedule(folder: Path, model_cfg) -> None:
    """The noise schedule the base was trained with must be the one fine-tuning uses.

    A base trained on other betas would be fine-tuned on noise levels it never saw, silently. Bases
    without a scheduler config beside them are taken on trust.
    """
    saved = _base_scheduler_config(folder)
    if saved is None:
        return
    schedule = saved.get("beta_schedule", "linear")
    if schedule != "linear":
        raise ConfigError(f"base {folder} was trained with '{schedule}' betas; coral-ft trains with linear betas (paper section 2.1)")
    for key in SCHEDULE_KEYS:
        if key in saved and not _same(saved[key], getattr(model_cfg, key)):
            raise ConfigError(
                f"base {folder} uses {key}={saved[key]} but the run has model.{key}={getattr(model_cfg, key)}; "
                f"pass --set model.{key}={saved[key]}"
            )


def _same(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
