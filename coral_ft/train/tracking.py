"""Experiment tracking through accelerate's trackers (`train.report_to`: tensorboard or wandb).

Every logged line of metrics.jsonl (each loss term, lr, steps/s) and every sample grid also goes
to the tracker. TensorBoard works offline (`pip install 'coral-ft[tensorboard]'`, then
`tensorboard --logdir RUN/logs`); wandb needs its own package and login.
"""

from __future__ import annotations

import contextlib
import importlib.util

from coral_ft.config.loading import dotted
from coral_ft.errors import ConfigError

TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "pip install 'coral-ft[tensorboard]'"), "wandb": ("wandb", "pip install wandb")}


def check_tracker(report_to: str) -> None:
    """A tracker whose package is missing is a one-line error before any work."""
    if report_to == "none":
        return
    package, hint = TRACKER_PACKAGES[report_to]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"train.report_to={report_to} needs the {package} package: {hint}")


@contextlib.contextmanager
def start_tracking(accelerator, config, run):
    """Open the run's tracker (if any) for the length of the training loop."""
    if config.train.report_to == "none":
        yield
        return
    # {'train.lr': 2e-4, ...}: scalars as they are, lists and tables as text (trackers want scalars)
    flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in dotted(config.to_dict()).items()}
    accelerator.init_trackers(run.root.resolve().name, config=flat)
    try:
        yield
    finally:
        accelerator.end_training()


def log_image(accelerator, path, step: int) -> None:
    """A sample grid PNG to every tracker that takes images (TensorBoard wants NHWC)."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({"samples": image[None]}, step=step, dataformats="NHWC")
        elif hasattr(tracker, "log_images"):
            tracker.log_images({"samples": [image]}, step=step)
