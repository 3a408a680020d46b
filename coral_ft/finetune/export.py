"""Model folders for use outside a run: `coral-ft export` (a fine-tune run -> a plain diffusers
model folder) and `coral-ft convert` (the peers' `ckpt_{step}.pt` files of the CORAL, CBDM and T2H
code bases, whose weights `coral_ft.models.convert_peer` maps onto a diffusers U-Net).

With `merge`, LoRA adapters are folded into the base weights and the result is an ordinary
`UNet2DModel` / `UNet2DConditionModel` folder (+ scheduler config + coral_ft.json) that loads
with `from_pretrained` alone. Without it, a LoRA model is copied as it is (adapters and the
reference to its base): small, and `coral_ft.checkpoint.model.load_model` reads it unmerged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from diffusers import UNet2DModel

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import (
    ModelInfo,
    load_info,
    load_model,
    read_finetune_meta,
    resolve_model_dir,
    save_head,
    save_model,
    write_finetune_meta,
    write_info,
)
from coral_ft.errors import UserError, check_new_folder
from coral_ft.files import respect_umask
from coral_ft.models.context import inner_unet, save_context
from coral_ft.models.convert_peer import PeerLayout
from coral_ft.models.head import ProjectionHead
from coral_ft.models.lora import is_lora
from coral_ft.models.schedule import make_scheduler
from coral_ft.sample.card import write_model_card


def export_model(run: str | Path, out: str | Path, merge: bool = False, pipeline: bool = False) -> Path:
    """Write the run's model to `out`; returns `out`. With `pipeline`, a CoralPipeline folder
    (model_index.json, unet/, scheduler/, pipeline.py; LoRA adapters merged)."""
    model_dir = resolve_model_dir(run)
    out = Path(out)
    check_new_folder(out)
    if out.resolve() == model_dir.resolve():
        raise UserError("--out must differ from the run's model folder")
    meta = read_finetune_meta(model_dir)
    metrics = known_metrics(model_dir)
    if merge and (meta is None or meta["kind"] != "lora"):
        raise UserError(f"{model_dir} holds full weights, not LoRA adapters: there is nothing to merge; drop --merge")
    if not pipeline and not merge and meta is not None and meta["kind"] == "lora":
        shutil.copytree(model_dir, out, dirs_exist_ok=True)  # a copy keeps the source's modes: respect_umask below
        info = load_info(model_dir)  # with the run's [sample] settings, which the folder records once it leaves the run
        write_info(out, info)
    else:
        unet, scheduler, info = load_model(model_dir)  # load_info's: with the run's [sample] settings
        core = inner_unet(unet)
        if pipeline and core is not unet:
            raise UserError("a cross-attention U-Net with a fixed context cannot be exported as a pipeline; export it as a model folder")
        core = core.merge_and_unload() if is_lora(core) else core  # W <- W + (alpha/r) B A: a plain U-Net
        if pipeline:
            from coral_ft.sample.pipeline import CoralPipeline

            CoralPipeline(core, scheduler, info.class_names or None).save_pretrained(out)
            write_info(out / "unet", info)  # the sampling settings (W) for `coral-ft sample --model FOLDER`
        else:
            save_model(out, core, scheduler, info)
            save_context(out, unet)
            if meta is not None:
                write_finetune_meta(out, {**meta, "kind": "full", "merged_from": str(model_dir.resolve())})
    write_model_card(out, info, metrics, pipeline=pipeline)
    respect_umask(out)
    return out


def known_metrics(model_dir: Path) -> dict | None:
    """The evaluation a bench wrote beside the run (BENCH/<method>/seed-<i>/eval.json), if any."""
    for cand in (model_dir.parent / "eval.json", model_dir.parent.parent / "eval.json"):
        if cand.is_file():
            return json.loads(cand.read_text()).get("metrics")
    return None


def push_folder(folder: Path, repo_id: str) -> str:
    """Upload an exported folder to the Hugging Face Hub; a clear error when that cannot be done."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except Exception as exc:  # offline, no token, no permission: all end here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"cannot upload {folder} to the Hub repo {repo_id} ({type(exc).__name__}: {first}); the folder is written: "
            "check the network and `hf auth login`, then upload it with `hf upload` or run export again"
        ) from None
    return f"https://huggingface.co/{repo_id}"


def write_converted(out: str | Path, unet: UNet2DModel, head: ProjectionHead | None, layout: PeerLayout, source: str) -> Path:
    """OUT/model (diffusers folder + DDPM scheduler + coral_ft.json) and OUT/head when present."""
    run = RunDir(out)
    classes = [str(i) for i in range(layout.num_classes or 0)]
    info = ModelInfo(class_names=classes, extra={"converted_from": str(source), "peer_layout": layout.__dict__})
    # The peers' schedule: T steps, linear betas 1e-4 .. 0.02 (make_scheduler's defaults).
    model_dir = save_model(run.model, unet, make_scheduler(layout.num_timesteps), info)
    write_model_card(model_dir, info)
    if head is not None:
        save_head(run.head, head)
    return model_dir
