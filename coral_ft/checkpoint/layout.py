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

from pathlib import Path

MODEL_SUBDIR = "model"


class RunDir:
    """The paths of the run folder `root` (the layout above)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.toml"
        self.checkpoints = self.root / "checkpoints"
        self.metrics = self.root / "metrics.jsonl"
        self.samples = self.root / "samples"
        self.model = self.root / MODEL_SUBDIR
        self.head = self.root / "head"

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    @classmethod
    def of_model(cls, model_dir: str | Path) -> RunDir | None:
        """The run a model folder belongs to (RUN/model -> RUN), or None for a standalone folder."""
        model_dir = Path(model_dir).resolve()
        run = cls(model_dir.parent)
        return run if model_dir.name == MODEL_SUBDIR and run.config.is_file() else None
