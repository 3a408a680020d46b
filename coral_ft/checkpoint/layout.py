"""The run directory's layout, in one place.

    RUN/config.toml                 the resolved configuration (`--resume` reloads it)
    RUN/checkpoints/step-0005000/   training checkpoints (coral_ft.checkpoint.training)
    RUN/metrics.jsonl               one JSON line per logging step
    RUN/samples/step-0005000.png    periodic sample grids
    RUN/model/                      the exported EMA U-Net (coral_ft.checkpoint.model)
    RUN/head/                       the projection head (training and `coral-ft latents` only)

Every command that reads or writes a run asks a `RunDir` for the path, so the names live here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.toml"
CHECKPOINTS_SUBDIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
SAMPLES_SUBDIR = "samples"
MODEL_SUBDIR = "model"
HEAD_SUBDIR = "head"


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_SUBDIR

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_SUBDIR

    @property
    def model(self) -> Path:
        return self.root / MODEL_SUBDIR

    @property
    def head(self) -> Path:
        return self.root / HEAD_SUBDIR

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    @classmethod
    def of_model(cls, model_dir: str | Path) -> RunDir | None:
        """The run a model folder belongs to (RUN/model -> RUN), or None for a standalone folder."""
        model_dir = Path(model_dir).resolve()
        run = cls(model_dir.parent)
        return run if model_dir.name == MODEL_SUBDIR and run.config.is_file() else None
