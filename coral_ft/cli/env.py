"""`coral-ft env`: versions, the device, and which metric weights were found where (for bug reports)."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from coral_ft.cli.app import app

PACKAGES = ("torch", "torchvision", "diffusers", "peft", "accelerate", "pytorch-metric-learning", "clean-fid", "typer",
            "numpy", "scikit-learn", "safetensors")


@app.command("env")
def env_command() -> None:
    """Print versions, the compute device and where the metric networks' weights are."""
    import torch

    from coral_ft import __version__
    from coral_ft.errors import UserError
    from coral_ft.metrics.features.weights import find_inception, find_vgg16

    typer.echo(f"coral-ft {__version__}, Python {platform.python_version()} on {platform.platform()}")
    for name in PACKAGES:
        try:
            typer.echo(f"  {name:24s} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            typer.echo(f"  {name:24s} not installed")
    if torch.cuda.is_available():
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        typer.echo(f"device: cuda ({torch.cuda.device_count()} GPU: {gpus}; CUDA {torch.version.cuda})")
    else:
        typer.echo(f"device: cpu ({torch.get_num_threads()} threads); no CUDA GPU visible")
    for label, find in (("Inception (FID, IS)", find_inception), ("VGG16 (precision/recall)", find_vgg16)):
        try:
            found = find()
            typer.echo(f"{label}: {found.path} (from {found.source})")
        except UserError as exc:
            typer.echo(f"{label}: not found: {exc}")
