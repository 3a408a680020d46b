"""`coral-ft export`: a fine-tune run -> a plain diffusers model folder.

With `merge`, LoRA adapters are folded into the base weights and the result is an ordinary
`UNet2DModel` / `UNet2DConditionModel` folder (+ scheduler config + coral_ft.json) that loads
with `from_pretrained` alone. Without it, a LoRA model is copied as it is (adapters and the
reference to its base): small, and `coral_ft.checkpoint.model.load_model` reads it unmerged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coral_ft.checkpoint.model import load_model, resolve_model_dir, save_model
from coral_ft.errors import UserError
from coral_ft.finetune.context import inner_unet, save_context
from coral_ft.finetune.loading import read_finetune_meta, write_finetune_meta
from coral_ft.finetune.lora import has_lora, merge_lora


def export_model(run: str | Path, out: str | Path, merge: bool = False) -> Path:
    """Write the run's model to `out`; returns `out`."""
    model_dir = resolve_model_dir(run)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new --out")
    if out.resolve() == model_dir.resolve():
        raise UserError("--out must differ from the run's model folder")
    meta = read_finetune_meta(model_dir)
    if not merge and meta is not None and meta["kind"] == "lora":
        shutil.copytree(model_dir, out, dirs_exist_ok=True)
        return out
    unet, scheduler, info = load_model(model_dir)
    core = inner_unet(unet)
    if has_lora(core):
        merge_lora(core)
    save_model(out, core, scheduler, info)
    save_context(out, unet)
    if meta is not None:
        write_finetune_meta(out, {**meta, "kind": "full", "merged_from": str(model_dir.resolve())})
    return out
