"""`coral-ft bench`: train, sample and evaluate methods over seeds on one recipe, beside the paper's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app

DATA = {"data_root": o.DATA["data_root"]}
SAMPLE_BATCH = {"sample_batch_size": o.SAMPLING["sample_batch_size"]}
OFFICIAL = {"official_code": o.METHOD["official_code"]}
FEATURE_BATCH = {"feature_batch_size": o.EVAL["feature_batch_size"], "resize": o.EVAL["resize"],
                 "weights_dir": o.EVAL["weights_dir"]}


@app.command("bench")
@o.takes(o.BENCH, DATA, SAMPLE_BATCH, FEATURE_BATCH, OFFICIAL, o.DEVICE)
def bench(
    dataset: Annotated[str, typer.Argument(help="A shipped recipe: cifar10-lt, cifar10-lt-0.001, cifar100-lt, celeba-5, imagenet-lt, cifar10, cifar100, digits-lt, fashion-mnist-lt (`coral-ft config recipes`).")],
    out: Annotated[Path | None, typer.Option("--out", help="Bench folder: every stage is resumed from / skipped in it (default: runs/bench-DATASET).")] = None,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    dry_run: o.DryRun = False,
    progress: o.Progress = True,
    report: Annotated[bool, typer.Option("--report", metavar="", help="Write the report of the trials evaluated so far and stop: nothing is trained (a bench in progress, from another terminal).", rich_help_panel=o.PANEL_RUN)] = False,
    *,
    flags: dict,
) -> None:
    """Per method (or fine-tune arm) and seed: train, (sweep W on a selection set,) sample, evaluate; then
    results.md/.csv/.json, figures, and the table with intervals printed here."""
    config = o.fit_precision(o.resolve_config(recipe=recipe or dataset, sets=sets, flags=flags), sets, flags)
    config.bench.keep = sorted(o.given_fields(sets, flags))  # what the user set, the scale leaves alone
    out = out or Path("runs") / f"bench-{dataset}"
    if dry_run:
        typer.echo(plan_text(dataset, config, out))
        return
    from coral_ft.api import bench as run_bench

    path, summary = run_bench(dataset, config, out, progress=progress, report_only=report)
    if summary:
        typer.echo(summary)
    if summary and path.is_file():  # not yet with --no-wait: the jobs have only been submitted
        typer.echo(f"\nfull report: {path}")


def plan_text(dataset: str, config, out: Path) -> str:
    """--dry-run: the plan, and the jobs of a fanned-out bench. Planned without the files where the
    registry knows their shape (as `train --dry-run` shows its config without them); else a missing
    data set stops here, with what to download or prepare."""
    from coral_ft.bench.context import check_data
    from coral_ft.bench.fanout import describe_jobs
    from coral_ft.bench.plan import describe, fit_smoke_samples, make_plan
    from coral_ft.data.registry import declared_shape

    plan = make_plan(dataset, config, out)
    declared = declared_shape(config.data)
    if declared is None:
        data = check_data(plan)
        num_classes, image_shape = data.num_classes, tuple(data.images.shape[1:])
    else:
        num_classes, image_shape = declared
    if plan.scale == "smoke":
        fit_smoke_samples(plan, num_classes)
    lines = [describe(plan, num_classes, image_shape)]
    if declared is not None:
        lines.append("(planned from the data set's known shape: --dry-run reads no data)")
    if config.bench.launch.launcher == "slurm" or config.bench.launch.jobs > 1:
        lines.append(describe_jobs(plan))
    return "\n".join(lines)
