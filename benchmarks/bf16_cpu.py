"""bf16 autocast against fp32 on this CPU: one UNet2DModel training step (forward, eps-MSE,
backward, Adam) per preset and batch, the two precisions interleaved (fp32, bf16, fp32, ...),
medians, one thread. What `--mixed-precision bf16` on a CPU buys (coral_ft.devices.cpu_bf16).

    python benchmarks/bf16_cpu.py --steps 6 --warmup 1        # small @ 64, ddpm-cifar @ 8
    python benchmarks/bf16_cpu.py --cases small:64 --steps 3  # one case
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import SHAPES, interleaved_medians

from coral_ft.models.presets import build_unet


def step_fn(preset: str, batch: int, dtype):
    """One training step's closure: a fresh U-Net and Adam of its own per precision (same init)."""
    channels, size = SHAPES[preset]
    torch.manual_seed(0)
    unet = build_unet(preset, size, channels, 10).train()
    opt = torch.optim.Adam(unet.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    x, noise = (torch.randn(batch, channels, size, size, generator=g) for _ in range(2))
    t, y = torch.randint(0, 1000, (batch,), generator=g), torch.randint(0, 10, (batch,), generator=g)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            out = unet(x, t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(out.float(), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def cpu_flags() -> str:
    from coral_ft.devices import cpu_bf16

    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        flags = []
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{platform.processor() or platform.machine()}; native bf16: {', '.join(native) or 'none'}; cpu_bf16() = {cpu_bf16()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small:64,ddpm-cifar:8", help="PRESET:BATCH, comma-separated")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"one training step (forward, backward, Adam), {args.steps} timed interleaved steps each after "
          f"{args.warmup} warm-up, {args.threads} thread(s); {cpu_flags()}")
    print(f"  {'preset':<12}{'batch':>6}{'fp32 ms':>11}{'bf16 ms':>11}{'bf16/fp32':>11}")
    for case in args.cases.split(","):
        preset, batch = case.split(":")
        fns = {"fp32": step_fn(preset, int(batch), None), "bf16": step_fn(preset, int(batch), torch.bfloat16)}
        med = interleaved_medians(fns, args.steps, args.warmup)
        print(f"  {preset:<12}{batch:>6}{med['fp32'] * 1000:>11.1f}{med['bf16'] * 1000:>11.1f}"
              f"{med['bf16'] / med['fp32']:>10.2f}x", flush=True)


if __name__ == "__main__":
    main()
