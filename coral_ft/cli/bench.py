"""`coral-ft bench`: train, sample and evaluate methods on one recipe, beside the paper's numbers."""

from __future__ import annotations

from typing import Optional

import typer

from coral_ft.cli.app import app


@app.command("bench")
def bench(
    dataset: str = typer.Argument(..., help="A recipe name from recipes/ (cifar10-lt, cifar10-lt-0.001, cifar100-lt, celeba-5, imagenet-lt, cifar10, cifar100, digits-lt)."),
    out: str = typer.Option(..., "--out", help="Bench folder: every stage is resumed from / skipped in it."),
    methods: str = typer.Option(",".join(("ddpm", "cbdm", "t2h", "coral")), "--methods", help="Comma-separated methods."),
    scale: str = typer.Option("paper", "--scale", help="paper (the paper's runs), small (reduced GPU run) or smoke (CPU plumbing check)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the data set's files."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="A recipe file instead of recipes/DATASET.toml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan with estimated sizes and stop."),
    device: Optional[str] = typer.Option(None, "--device", help="Device for the metric networks (default: the process's)."),
) -> None:
    """Per method: train, sample (the recipe's W), evaluate; then results.md/.csv/.json and figures."""
    from coral_ft.bench.run import check_data, describe, fit_smoke_samples, make_plan, run_bench

    names = [m.strip() for m in methods.split(",") if m.strip()]
    plan = make_plan(dataset, names, scale, out, data_root, recipe)
    data = check_data(plan)  # a missing data set stops here, with what to download or prepare
    if scale == "smoke":
        fit_smoke_samples(plan, data.num_classes)
    if dry_run:
        typer.echo(describe(plan, data.num_classes, tuple(data.images.shape[1:])))
        return
    path = run_bench(plan, device=device)
    typer.echo(f"wrote {path}")
