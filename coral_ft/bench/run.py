"""`coral-ft bench`: for every trial, train (or fine-tune) -> (guidance sweep) -> sample -> evaluate;
then the report beside the paper. Every stage is skipped when its marker exists, so an
interrupted bench resumes where it stopped (see coral_ft.bench.plan for the folder layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coral_ft.bench.context import build_context
from coral_ft.bench.groups import Groups, class_groups
from coral_ft.bench.plan import BenchPlan
from coral_ft.bench.stages import run_trial
from coral_ft.errors import UserError


@dataclass(frozen=True)
class ReportContext:
    """What the report reads of a bench (without training anything)."""

    plan: BenchPlan
    groups: Groups
    counts: list[int]


def finished_evaluations(plan: BenchPlan) -> dict[str, dict]:
    return {t.name: json.loads((t.folder / "eval.json").read_text()) for t in plan.trials
            if (t.folder / "eval.json").is_file()}


def run_bench(plan: BenchPlan, data, progress: bool = True, report_only: bool = False) -> tuple[Path, str]:
    """Every stage of every trial, skipping finished ones; then the report. -> (results.md, summary).
    `data`: the long-tailed training set (`check_data`). `report_only`: the report of the trials
    evaluated so far, nothing trained (a bench in progress, seen from another terminal). With
    bench.launch asking for more than one local job, or for SLURM, the trials run as jobs
    (coral_ft.bench.fanout) and this process writes the report when the last one ends."""
    import torch

    from coral_ft.bench.report import write_report

    launch = plan.config.bench.launch
    if not report_only and (launch.launcher == "slurm" or launch.jobs > 1):
        from coral_ft.bench.fanout import run_fanned_out

        run_fanned_out(plan, data, progress)
        if not launch.wait:
            return plan.out / "results.md", (f"submitted; once the jobs have run (logs in {plan.out / 'jobs'}), "
                                              "the same command with --report writes the report")
        report_only = True
    if report_only:
        evaluations = finished_evaluations(plan)
        if not evaluations:
            raise UserError(f"no finished trial under {plan.out} to report: pass the bench's --out, recipe, "
                            "--protocol and --methods/--arms")
        return write_report(ReportContext(plan, class_groups(data.counts()), data.counts()), evaluations)
    ctx = build_context(plan, data, progress)
    evaluations = {}
    for trial in plan.trials:
        evaluation = run_trial(ctx, trial)
        if ctx.is_main:
            evaluations[trial.name] = evaluation
    if not ctx.is_main:
        return plan.out / "results.md", ""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return write_report(ctx, evaluations)
