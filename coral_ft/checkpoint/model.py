"""The exported model folder: what sampling, evaluation and other tools read.

`RUN/model/` is a plain diffusers folder: `UNet2DModel.from_pretrained(RUN/model)` loads it
without coral_ft. Beside the U-Net weights it holds the noise schedule (`scheduler_config.json`,
the DDPMScheduler the model was trained with) and `coral_ft.json` (class names, class counts,
data set). How the model samples by default is the run's [sample] section, kept once, in the run's
config.toml; a folder outside a run (exported, converted) records it in its coral_ft.json.
Fine-tuned models add `finetune.json`:

- full fine-tuning: the diffusers weights, as above;
- LoRA: `config.json` (the U-Net's architecture) + the peft adapter files; the frozen base is
  read again from where `finetune.json` points;
- `context.safetensors` for a `UNet2DConditionModel` (its fixed cross-attention input).

The projection head is training-only; it is saved to `RUN/head/`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file, save_file
from torch import nn

from coral_ft.checkpoint.layout import MODEL_SUBDIR, RunDir
from coral_ft.errors import UserError
from coral_ft.files import respect_umask, tomllib
from coral_ft.models.class_embedding import ensure_class_embedding
from coral_ft.models.context import load_context
from coral_ft.models.convert_peer import convert_peer_checkpoint
from coral_ft.models.head import ProjectionHead
from coral_ft.models.lora import load_lora, weights_fingerprint
from coral_ft.models.schedule import make_scheduler
from coral_ft.models.unets import UNET_CLASSES, load_unet, resolve_unet_folder, unet_class_name

META_FILE = "coral_ft.json"
FINETUNE_FILE = "finetune.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"
PIPELINE_UNET = "unet"  # where a pipeline folder (coral-ft export --pipeline) keeps its U-Net


@dataclass
class ModelInfo:
    """What coral_ft records about an exported model beside the diffusers files."""

    class_names: list[str] = field(default_factory=list)
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # method, step, class_counts, sample settings, ...

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def save_model(folder: str | Path, unet, scheduler: DDPMScheduler, info: ModelInfo) -> Path:
    """The diffusers files and coral_ft.json. The model card (README.md) is written by the code that
    finishes a model (coral_ft.sample.card.write_model_card: it names the samplers, a layer above)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder)
    scheduler.save_pretrained(folder)
    write_info(folder, info)
    respect_umask(folder)
    return folder


def write_info(folder: Path, info: ModelInfo) -> None:
    (Path(folder) / META_FILE).write_text(json.dumps(asdict(info), indent=2))


def save_head(folder: str | Path, head: nn.Module) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, folder / HEAD_WEIGHTS)
    cfg = {"in_features": head.proj.in_features, "dim": head.proj.out_features, "pooling": head.pooling}
    (folder / HEAD_CONFIG).write_text(json.dumps(cfg))
    respect_umask(folder)


def load_head(folder: str | Path) -> ProjectionHead | None:
    folder = Path(folder)
    if not (folder / HEAD_WEIGHTS).is_file():
        return None
    cfg = json.loads((folder / HEAD_CONFIG).read_text())
    head = ProjectionHead(cfg["in_features"], cfg["dim"], cfg["pooling"])  # spatial 1: in_features as saved
    head.load_state_dict(load_file(folder / HEAD_WEIGHTS))
    return head


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory (with `model/`), a pipeline folder (with `unet/`) or a model folder itself -> the model folder."""
    path = Path(path)
    for cand in (path / MODEL_SUBDIR, path / PIPELINE_UNET, path):
        if (cand / "config.json").is_file():
            return cand
    raise UserError(
        f"no model at {path}: expected a run directory with {MODEL_SUBDIR}/config.json, a pipeline folder with "
        f"{PIPELINE_UNET}/config.json or a diffusers model folder"
    )


def load_info(model_dir: Path) -> ModelInfo:
    meta = Path(model_dir) / META_FILE
    if not meta.is_file():
        return ModelInfo()
    data = json.loads(meta.read_text())
    legacy = data.pop("guidance", None)  # folders written before W was kept once, in the [sample] settings
    info = ModelInfo(**data)
    if legacy is not None:
        info.extra.setdefault("sample", {}).setdefault("guidance", legacy)
    run = RunDir.of_model(model_dir)
    if run is not None and "sample" not in info.extra:  # a run's model samples as its config.toml says
        info.extra["sample"] = tomllib.loads(run.config.read_text()).get("sample", {})
    return info


# -- fine-tuned folders ---------------------------------------------------------------------------
def read_finetune_meta(model_dir: Path) -> dict | None:
    path = Path(model_dir) / FINETUNE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_finetune_meta(model_dir: Path, meta: dict) -> None:
    (Path(model_dir) / FINETUNE_FILE).write_text(json.dumps(meta, indent=2))


def load_base_of(meta: dict, model_dir: Path) -> nn.Module:
    """The base U-Net of a LoRA model: where it was (a folder, or a peers' checkpoint converted
    again), else found anew from its original spec (e.g. a hub ID)."""
    recorded = Path(meta["base"])
    if recorded.is_file():
        return convert_peer_checkpoint(recorded, "ema")[0]
    if (recorded / "config.json").is_file():
        return load_unet(recorded)
    try:
        return load_unet(resolve_unet_folder(meta["base_spec"]))
    except UserError:
        raise UserError(
            f"the base of the LoRA model {model_dir} is gone ({meta['base']}); restore it, "
            "or export a merged copy where the base exists (`coral-ft export RUN --merge`)"
        ) from None


def load_unet_of(model_dir: Path) -> nn.Module:
    """The U-Net of a model folder: plain, fully fine-tuned, or LoRA adapters on their base
    (unmerged); a cross-attention U-Net comes wrapped with its fixed context."""
    model_dir = Path(model_dir)
    meta = read_finetune_meta(model_dir) or {"kind": "full"}
    if meta["kind"] == "lora":
        unet = load_base_of(meta, model_dir)
        expected = meta.get("base_fingerprint")
        if expected is not None and weights_fingerprint(unet) != expected:
            raise UserError(
                f"the base of the LoRA adapters in {model_dir} ({meta['base']}) has changed since they were trained "
                f"(weights fingerprint {weights_fingerprint(unet)[:12]} != {expected[:12]}); adapters only fit the "
                "weights they were trained on: restore that base, or use a merged export"
            )
        num_classes = json.loads((model_dir / "config.json").read_text())["num_class_embeds"] - 1
        ensure_class_embedding(unet, num_classes)
        unet = load_lora(model_dir, unet)
    else:
        unet = load_unet(model_dir)
    return load_context(model_dir, unet)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """-> (unet in eval mode, DDPMScheduler, ModelInfo) from a run or model folder."""
    model_dir = resolve_model_dir(path)
    if unet_class_name(model_dir) not in (None, *UNET_CLASSES):
        raise UserError(f"{model_dir} holds a {unet_class_name(model_dir)}, not a diffusers U-Net")
    unet = load_unet_of(model_dir)
    if (model_dir / "scheduler_config.json").is_file():
        scheduler = DDPMScheduler.from_pretrained(model_dir)
    else:  # a bare diffusers U-Net: assume the DDPM schedule of the paper
        scheduler = make_scheduler()
    info = load_info(model_dir)
    if not info.class_names and unet.config.num_class_embeds:
        info.class_names = [str(i) for i in range(unet.config.num_class_embeds - 1)]
    return unet.to(device).eval(), scheduler, info
