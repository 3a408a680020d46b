"""LoRA versus full fine-tuning of the `ddpm-cifar` U-Net with CORAL, through the real trainer.

Prints, for each mode: median step time, trainable parameters, optimizer-state bytes, peak
memory, and the size of what is saved (the exported model/ folder and one training
checkpoint). Targets (issue 4): LoRA saved artefacts < 5% of the full model; LoRA optimizer
state < 10% of full. Each mode runs in its own process so that peak memory is its own.

    python benchmarks/lora_vs_full.py                      # CPU, batch 8, 5 timed steps
    python benchmarks/lora_vs_full.py --device cuda --batch-size 128 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import interleaved_medians, peak_rss_bytes, random_data, worker_json

MODES = ("full", "lora")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def optimizer_state_bytes(optimizer) -> int:
    # Adam keeps exp_avg and exp_avg_sq per trainable parameter (+ a scalar step).
    return sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if hasattr(v, "numel"))


def worker(mode: str, base: str, batch_size: int, steps: int, warmup: int, rank: int, workdir: str) -> dict:
    import torch

    from coral_ft.config import load_config
    from coral_ft.finetune.source import FinetuneSource
    from coral_ft.train.trainer import Trainer

    cfg = load_config(None, {
        "objective.method": "coral", "train.batch_size": batch_size, "train.warmup_steps": 0,
        "finetune.base": base, "finetune.lora": mode == "lora", "finetune.rank": rank, "finetune.alpha": float(rank),
    })  # fmt: skip
    trainer = Trainer(cfg, f"{workdir}/{mode}", FinetuneSource(cfg.finetune), progress=False, data=random_data("ddpm-cifar"))
    cuda = trainer.accelerator.device.type == "cuda"
    step_s = interleaved_medians({mode: trainer.train_step}, steps, warmup)[mode]
    peak_rss = peak_rss_bytes()  # training only, before saving
    trainer.save_checkpoint()
    model_dir = trainer.export()
    denoiser = trainer.denoiser
    return {
        "mode": mode,
        "device": str(trainer.accelerator.device),
        "step_s": step_s,
        "trainable": sum(p.numel() for p in denoiser.parameters() if p.requires_grad),
        "unet_params": sum(p.numel() for p in denoiser.unet.parameters()),
        "optimizer_bytes": optimizer_state_bytes(trainer.optimizer),
        "peak_rss_bytes": peak_rss,
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "model_bytes": folder_bytes(model_dir),
        "checkpoint_bytes": folder_bytes(Path(workdir) / mode / "checkpoints"),
    }


def run_mode(mode: str, args, base: Path, workdir: str) -> dict:
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return worker_json([__file__, "--worker", mode, "--base", str(base), "--workdir", workdir, "--batch-size",
                        str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup), "--rank", str(args.rank)],
                       env)


def mib(n) -> str:
    return "-" if n is None else f"{n / 2**20:.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.base, args.batch_size, args.steps, args.warmup, args.rank, args.workdir)))
        return

    import torch

    from coral_ft.models.presets import build_unet

    with tempfile.TemporaryDirectory() as workdir:
        torch.manual_seed(0)
        base = Path(workdir) / "base"
        build_unet("ddpm-cifar", 32, 3, 10).save_pretrained(base)  # a class-conditional CIFAR base
        res = {m: run_mode(m, args, base, workdir) for m in MODES}
    full, lora = res["full"], res["lora"]
    print(f"ddpm-cifar, CORAL, device={full['device']}, batch={args.batch_size}, timed steps={args.steps}, LoRA rank={args.rank}")
    print(f"{'':24s}{'full':>16s}{'lora':>16s}{'lora/full':>12s}")
    rows = [
        ("median step time", f"{full['step_s'] * 1e3:.0f} ms", f"{lora['step_s'] * 1e3:.0f} ms", lora["step_s"] / full["step_s"]),
        ("trainable parameters", f"{full['trainable']:,}", f"{lora['trainable']:,}", lora["trainable"] / full["trainable"]),
        ("optimizer state", mib(full["optimizer_bytes"]), mib(lora["optimizer_bytes"]), lora["optimizer_bytes"] / full["optimizer_bytes"]),
        ("peak RSS (training)", mib(full["peak_rss_bytes"]), mib(lora["peak_rss_bytes"]), lora["peak_rss_bytes"] / full["peak_rss_bytes"]),
        ("saved model/ folder", mib(full["model_bytes"]), mib(lora["model_bytes"]), lora["model_bytes"] / full["model_bytes"]),
        ("one training checkpoint", mib(full["checkpoint_bytes"]), mib(lora["checkpoint_bytes"]), lora["checkpoint_bytes"] / full["checkpoint_bytes"]),
    ]
    if full["peak_cuda_bytes"] is not None:
        rows.append(("peak CUDA memory", mib(full["peak_cuda_bytes"]), mib(lora["peak_cuda_bytes"]), lora["peak_cuda_bytes"] / full["peak_cuda_bytes"]))
    for name, a, b, ratio in rows:
        print(f"{name:24s}{a:>16s}{b:>16s}{ratio:>11.1%}")
    saved_ok = lora["model_bytes"] < 0.05 * full["model_bytes"]
    optim_ok = lora["optimizer_bytes"] < 0.10 * full["optimizer_bytes"]
    print(f"target saved artefacts < 5% of full: {'met' if saved_ok else 'NOT met'}; optimizer state < 10%: {'met' if optim_ok else 'NOT met'}")


if __name__ == "__main__":
    main()
