"""`coral-ft train --from-scratch` and `coral-ft finetune --base`: one set of options, one trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.errors import UserError

Out = Annotated[Path, typer.Option("--out", help="Run directory.", rich_help_panel=o.PANEL_RUN)]
Resume = Annotated[bool, typer.Option("--resume", metavar="", help="Continue the run in --out from its newest checkpoint (starts it when it has none).", rich_help_panel=o.PANEL_RUN)]
TRAINING_OPTIONS = (o.DATA, o.MODEL, o.METHOD, o.OPTIM, o.TRACKING, o.DEVICE)
LORA_ONLY = {"finetune.rank": "--rank", "finetune.alpha": "--lora-alpha", "finetune.targets": "--lora-targets"}  # field: flag


def training_config(out: Path, recipe, sets, resume: bool, flags: dict, base: dict | None = None):
    """-> (config, notes). Recipe (or, resuming without one, the run's saved config; else the data
    set's own recipe) + --set + flags. `base`: settings under the recipe (a fine-tuning base's data).
    `notes`: what to say on stderr once the run proceeds (which recipe a data set name brought)."""
    from coral_ft.checkpoint.layout import RunDir

    saved = RunDir(out).config
    run = saved if recipe is None and resume and saved.is_file() else None
    if resume and recipe is None and run is None and base is None and not o.was_given("data.dataset", sets, flags):
        raise UserError(f"--resume: {out} holds no run to resume (no {saved.name}: it stopped before it began); "
                        "start it with the options of the original command (--recipe or --dataset, ...) and --resume")
    config = o.resolve_config(recipe=recipe, run=run, base=base, sets=sets, flags=flags)
    implied = o.implied_recipe(sets=sets, flags=flags, base=base) if recipe is None and run is None else None
    notes = (f"no --recipe: the {implied} recipe (the data set's own) sets everything not given; "
             "--recipe or --set changes it",) if implied is not None else ()
    return o.fit_precision(config, sets, flags), notes  # a recipe's GPU precision on a CPU: what the CPU runs


def base_run_data(spec: str | None) -> dict | None:
    """The [data] settings of a coral-ft run given as a fine-tuning base: fine-tuning inherits them."""
    from coral_ft.checkpoint.layout import RunDir
    from coral_ft.config import read_recipe

    if not spec or not RunDir(spec).config.is_file():
        return None
    return {"data": read_recipe(RunDir(spec).config).get("data", {})}


def show_or_train(config, out: Path, resume: bool, progress: bool, dry_run: bool, finetune: bool = False,
                  notes=()) -> None:
    if dry_run:
        for note in notes:
            typer.echo(note, err=True)
        typer.echo(config.to_toml())
        return
    from coral_ft import api
    from coral_ft.checkpoint.layout import RunDir
    from coral_ft.train.resume import finished_step

    finished = resume and finished_step(config, RunDir(out)) is not None  # train() says so, and writes nothing
    run = api.finetune if finetune else api.train
    model_dir = run(config, out, resume=resume, progress=progress, notes=notes)
    if not finished:
        typer.echo(f"model written to {model_dir}")


@app.command("train")
@o.takes(*TRAINING_OPTIONS, recipe_defaults=True)
def train_command(
    out: Out,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", metavar="", help="Start from a fresh preset U-Net (required).")] = False,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    resume: Resume = False,
    progress: o.Progress = True,
    dry_run: o.DryRun = False,
    *,
    flags: dict,
) -> None:
    """Train from scratch; writes config.toml, checkpoints/, metrics.jsonl, samples/ and model/ to --out."""
    if not from_scratch:
        raise UserError("`coral-ft train` trains from scratch: pass --from-scratch (to start from a checkpoint, use `coral-ft finetune --base`)")
    config, notes = training_config(out, recipe, sets, resume, flags)
    show_or_train(config, out, resume, progress, dry_run, notes=notes)


@app.command("finetune")
@o.takes(o.LORA, *TRAINING_OPTIONS, recipe_defaults=True)
def finetune_command(
    out: Out,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    resume: Resume = False,
    progress: o.Progress = True,
    dry_run: o.DryRun = False,
    *,
    flags: dict,
) -> None:
    """Fine-tune a pretrained U-Net (full or LoRA); writes the same run directory as `train`.

    A UNet2DConditionModel base cross-attends to a fixed context: zeros by default, or
    `--set finetune.context=FILE.safetensors` (a 'context' tensor of shape (L, cross_attention_dim)).
    """
    from coral_ft.finetune.source import FinetuneSource

    if "model.preset" in flags:
        raise UserError("--preset chooses the U-Net of `coral-ft train --from-scratch`; a fine-tune keeps its base's "
                        "architecture: drop --preset")
    config, notes = training_config(out, recipe, sets, resume, flags, base=base_run_data(flags.get("finetune.base")))
    if not config.finetune.base:
        raise UserError("pass --base: a diffusers U-Net folder, a coral-ft run directory, a cached hub ID or a peers' ckpt_*.pt")
    lora_only = [name for field, name in LORA_ONLY.items() if field in flags]
    if lora_only and not config.finetune.lora:
        raise UserError(f"{', '.join(lora_only)} set{'s' if len(lora_only) == 1 else ''} LoRA adapters, but this "
                        f"fine-tune trains every weight: add --lora, or drop {', '.join(lora_only)}")
    FinetuneSource(config.finetune).locate()  # a missing or unreadable base fails now, also in a dry run
    show_or_train(config, out, resume, progress, dry_run, finetune=True, notes=notes)
