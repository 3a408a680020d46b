"""Which device a command runs on. The same `--device` means the same thing in every command."""

from __future__ import annotations

from coral_ft.errors import ConfigError


def resolved_device(device: str) -> str:
    """The torch device string of a `runtime.device` setting (auto, cpu, cuda, cuda:N); a CUDA
    device asked for on a machine without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return device


def use_runtime(runtime) -> str:
    """The device of a `[runtime]` section; on the CPU, torch's thread pool sized as it says."""
    import torch

    device = resolved_device(runtime.device)
    if runtime.threads and device == "cpu":
        torch.set_num_threads(runtime.threads)
    return device
