"""What a run folder allows: start a new run, continue one with --resume, or refuse.

- `--resume` on a folder without a complete checkpoint (missing, or stopped before its first)
  starts the run, which is what a cluster's requeue needs; on a run with one it says the step it
  continues from; on a finished run whose model/ is that of its last step it does nothing;
- without `--resume`, a folder that holds a run is refused (nothing is overwritten);
- a resumed run must not change what defines the model (`FROZEN_SECTIONS`), and its
  metrics.jsonl keeps each step once (lines logged after the checkpoint are dropped).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coral_ft.checkpoint.layout import RunDir
from coral_ft.checkpoint.model import load_info
from coral_ft.checkpoint.training import list_checkpoints
from coral_ft.config import RunConfig, load_config
from coral_ft.errors import UserError

# Sections that define what is trained; a resumed run must not change them.
FROZEN_SECTIONS = ("data", "model", "objective", "finetune")


def checkpoint_to_resume(config: RunConfig, run: RunDir, resume: bool, announce: bool = True) -> Path | None:
    """The checkpoint a run continues from, or None when it starts; refuses what would lose work.
    announce: say on stderr when --resume finds nothing to resume (a user's --resume, not a bench's)."""
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"--out {run.root} is a file; give a folder for the run")
    existing = list_checkpoints(run.checkpoints)
    if resume and not existing:
        if announce:
            print(f"--resume: no checkpoint in {run.checkpoints} yet; starting the run from step 0", file=sys.stderr)
        if run.metrics.exists():
            run.metrics.unlink()  # the lines of a start that died before its first checkpoint
        return None
    if not resume:
        if existing or run.metrics.exists():
            raise UserError(f"{run.root} already holds a run; pass --resume to continue it or choose another --out")
        return None
    saved, now = load_config(run.config).to_dict(), config.to_dict()
    changed = [s for s in FROZEN_SECTIONS if saved.get(s) != now.get(s)]
    if changed:
        raise UserError(f"--resume: the [{', '.join(changed)}] settings differ from those saved in {run.config}; "
                        "only [train] and [sample] may change when resuming")
    step, checkpoint = existing[-1]
    if announce and step < config.train.max_steps:
        print(f"--resume: continuing from step {step} ({checkpoint}) to step {config.train.max_steps}", file=sys.stderr)
    return checkpoint


def finished_step(config: RunConfig, run: RunDir) -> int | None:
    """The last step of a finished run whose model/ is up to date, else None: its newest checkpoint
    reached train.max_steps and model/ was written from that step with these [sample] settings
    (which a resume may change, and model/coral_ft.json records)."""
    existing = list_checkpoints(run.checkpoints)
    if not existing or existing[-1][0] < config.train.max_steps or not (run.model / "config.json").is_file():
        return None
    step = existing[-1][0]
    recorded = load_info(run.model).extra
    sample = json.loads(json.dumps(config.to_dict()["sample"]))  # as coral_ft.json holds it
    return step if recorded.get("step") == step and recorded.get("sample") == sample else None


def truncate_metrics(path: Path, step: int) -> None:
    """Drop logged lines after `step` (written before an interruption): each step is kept once."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))
