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


def cpu_bf16() -> bool:
    """Does this CPU compute bf16 natively (AVX512-BF16 or AMX)? Without it torch emulates bf16,
    slower than fp32; with it a training step under bf16 autocast is faster than fp32's
    (docs/measurements/cpu/bf16_cpu.txt)."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def training_precision(precision: str, device: str, given: bool) -> tuple[str, str | None]:
    """The autocast a run trains with on `device`, and a note when it is not `precision`.

    A recipe's (or a saved run's) precision is a wish: where the device lacks it, the run trains in
    what the device supports (fp32 on a CPU without native bf16). One the user gave (`given`:
    --mixed-precision, --set) is an order: a ConfigError where the device cannot run it. On a CPU
    bf16 runs where the CPU computes it natively (a training step 0.5-0.6x fp32's time,
    docs/measurements/cpu/bf16_cpu.txt); fp16 never (no loss scaler on the CPU)."""
    if precision == "no" or not device.startswith("cpu"):
        return precision, None
    if precision == "fp16":
        why = "fp16 is for GPUs: the CPU has no loss scaler"
    elif not cpu_bf16():
        why = "this CPU has no native bf16 (AVX512-BF16 or AMX): emulated, it is slower than fp32"
    else:
        return precision, None
    if given:
        raise ConfigError(f"train.mixed_precision={precision} cannot run on this CPU ({why}): "
                          "pass --mixed-precision no, or run on a GPU")
    return "no", f"the recipe's train.mixed_precision={precision} does not fit this CPU ({why}): training in fp32 (no)"
