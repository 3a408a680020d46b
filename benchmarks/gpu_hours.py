"""An estimate of the GPU-hours of each paper recipe's bench, from the recipes and the H100 timings.

What is measured (docs/measurements/h100/): a CORAL training step of the `ddpm-cifar` U-Net at batch
128 with the recipes' fast path (bf16, channels-last, CUDA graphs), 38.6 ms (call4-train.log), and a
guided 1,000-step DDPM sampling step at batch 2,048, 177.1 ms (call3-sample.log). What is estimated:
- other methods' steps by their step-time ratio to DDPM measured on a CPU
  (docs/measurements/cpu/step_cost_small.txt: CBDM and the ambient baseline take two forward
  passes, CCUA two, CORAL, T2H and Dispersive one);
- other U-Nets (`ddpm-64` at 64x64) by their forward FLOPs per image against `ddpm-cifar`'s at
  32x32 (torch's FLOP counter on meta tensors), i.e. as if the step were compute-bound;
- sampling: every trial's reported samples plus its selection sets, at the recipe's sampler steps.
Evaluation (Inception features) and start-up are left out: minutes against hours.

    python benchmarks/gpu_hours.py            # the table of docs/cluster.md
"""

from __future__ import annotations

import argparse

import torch

TRAIN_MS = 38.6  # ddpm-cifar, batch 128, H100, bf16 + channels-last + CUDA graphs (CORAL; DDPM alike)
SAMPLE_MS_PER_IMAGE_STEP = 177.1 / 2048  # ddpm-cifar, guided DDPM step at batch 2,048, H100, bf16 + compile
MEASURED = ("ddpm-cifar", 32)
# step time against DDPM's, CPU, the `small` U-Net at batch 64 (step_cost_small.txt)
METHOD_FACTOR = {"ddpm": 1.0, "coral": 1.0, "t2h": 1.0, "dispersive": 1.0, "cbdm": 1.84, "ambient": 1.91, "ccua": 1.96}
RECIPES = ("cifar10-lt", "cifar10-lt-0.001", "cifar100-lt", "celeba-5", "imagenet-lt")


def forward_gflops(preset: str, size: int, channels: int = 3, classes: int = 10) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from coral_ft.models.presets import build_unet

    with torch.device("meta"):
        unet = build_unet(preset, size, channels, classes)
        x, t, y = torch.randn(1, channels, size, size), torch.tensor([10]), torch.tensor([1])
    with FlopCounterMode(display=False) as counter:
        unet(x, t, class_labels=y)
    return counter.get_total_flops() / 1e9


def recipe_hours(name: str, seeds: int) -> dict:
    from coral_ft.bench.plan import make_plan
    from coral_ft.config import load_config
    from coral_ft.metrics.registry import METRICS  # noqa: F401  (the plan reads the registry)
    from coral_ft.sample.registry import SAMPLERS

    config = load_config(name, {"bench.seeds": seeds})
    plan = make_plan(name, config, "/tmp/unused")
    from coral_ft.data.registry import DATASETS

    spec = DATASETS[config.data.dataset]
    size = config.data.image_size or spec.shape[-1]
    scale = forward_gflops(config.model.preset, size, spec.shape[0], spec.classes) / forward_gflops(*MEASURED)
    train = sample = 0.0
    for trial in plan.trials:
        cfg = trial.config
        method = cfg.objective.method
        train += cfg.train.max_steps * TRAIN_MS * scale * METHOD_FACTOR.get(method, 2.0) / 3.6e6
        steps = cfg.sample.steps or SAMPLERS[cfg.sample.sampler].default_steps or cfg.model.num_train_timesteps
        images = plan.num_samples + len(plan.sweep) * cfg_selection(plan)
        sample += images * steps * SAMPLE_MS_PER_IMAGE_STEP * scale / 3.6e6
    return {"trials": len(plan.trials), "methods": ",".join(plan.arms), "scale": scale, "train": train, "sample": sample}


def cfg_selection(plan) -> int:
    return plan.config.bench.selection_samples if plan.sweep else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="Training seeds per method.")
    opts = parser.parse_args()
    print(f"Estimated H100 GPU-hours of `coral-ft bench RECIPE --seeds {opts.seeds}` (the recipe's methods, 50k samples "
          f"each, no guidance sweep); step costs scaled from measured ddpm-cifar timings, see this script's docstring.")
    print(f"{'recipe':18s} {'methods':34s} {'trials':>6s} {'U-Net cost':>10s} {'train h':>8s} {'sample h':>8s} {'total h':>8s}")
    for name in RECIPES:
        h = recipe_hours(name, opts.seeds)
        print(f"{name:18s} {h['methods']:34s} {h['trials']:6d} {h['scale']:9.2f}x {h['train']:8.1f} {h['sample']:8.1f} "
              f"{h['train'] + h['sample']:8.1f}")


if __name__ == "__main__":
    main()
