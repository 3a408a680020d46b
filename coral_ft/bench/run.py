"""`coral-ft bench`: for every method and training seed, train -> (guidance sweep) -> sample ->
evaluate; then the report beside the paper. Every stage is skipped when its marker exists, so an
interrupted bench resumes where it stopped (see coral_ft.bench.plan for the folder layout)."""

from __future__ import annotations

from pathlib import Path

from coral_ft.bench.groups import class_groups
from coral_ft.bench.plan import BenchPlan
from coral_ft.bench.stages import (
    evaluate_stage,
    memorisation_features,
    metric_network,
    reference_images,
    reference_stage,
    sample_stage,
    sweep_stage,
    train_stage,
)
from coral_ft.errors import UserError


def check_data(plan: BenchPlan):
    """Load the training split now: a missing data set stops before any work (with how to get it)."""
    from coral_ft.data.registry import dataset_from_config

    return dataset_from_config(plan.config.data)


def bench_accelerator(plan: BenchPlan, device: str):
    """The process's accelerate state, set up as every trial's trainer will ask for it: accelerate
    allows one mixed-precision setting per process, so the bench's must be the trials' own."""
    from accelerate import Accelerator

    precisions = {trial.config.train.mixed_precision for trial in plan.trials}
    if len(precisions) > 1:
        raise UserError(f"the bench's methods train with different train.mixed_precision ({', '.join(sorted(precisions))}); "
                        "one bench process takes one: set it for all with --set train.mixed_precision=...")
    return Accelerator(mixed_precision=precisions.pop(), cpu=device == "cpu")


def run_bench(plan: BenchPlan, counts: list[int], progress: bool = True) -> tuple[Path, str]:
    """Every stage of every trial, skipping finished ones; then the report. -> (results.md, summary)."""
    import torch

    from coral_ft.bench.report import write_report

    device = plan.config.runtime.resolved_device()
    accelerator = bench_accelerator(plan, device)
    device = str(accelerator.device) if plan.config.runtime.device == "auto" else device
    plan.out.mkdir(parents=True, exist_ok=True)
    groups = class_groups(counts)
    extractor, reference, memo = None, None, None
    if accelerator.is_main_process:  # the metrics run on the main process only
        real = reference_images(plan)
        extractor = metric_network(plan, real)
        reference = reference_stage(plan, real, extractor, device)
        del real
        memo = memorisation_features(plan, extractor, device)
    evaluations = {}
    for trial in plan.trials:
        trial.folder.mkdir(parents=True, exist_ok=True)
        model_dir = train_stage(trial, accelerator, progress)
        guidance = sweep_stage(plan, trial, model_dir, reference, extractor, device, accelerator, progress)
        samples = sample_stage(plan, trial, model_dir, guidance, accelerator, progress)
        if accelerator.is_main_process:
            evaluations[trial.name] = evaluate_stage(plan, trial, samples, reference, groups, extractor, memo, device,
                                                     guidance)
        accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return plan.out / "results.md", ""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return write_report(plan, evaluations, groups, counts)
