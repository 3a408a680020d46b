"""The bench report: measured values beside the paper's, as Markdown, CSV and JSON, plus the
per-class FID bar chart (the paper's Figure 3)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from coral_ft.bench.spec import BENCH_METRICS

RESULTS_MD, RESULTS_CSV, RESULTS_JSON, PER_CLASS_PNG = "results.md", "results.csv", "results.json", "per_class_fid.png"


def measured_value(evaluation: dict, metric: str) -> float | None:
    """One table column out of evaluate()'s result (None where it was not computed)."""
    key, field = BENCH_METRICS[metric]
    entry = evaluation.get("metrics", {}).get(key, {})
    if key == "is":
        field = "mean"
        if not entry.get("available", True):
            return None
    value = entry.get(field)
    return None if value is None else float(value)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}".rstrip("0").rstrip(".")


def collect(plan, evaluations: dict) -> dict:
    rows = {}
    for run in plan.runs:
        ev = evaluations.get(run.method.name, {})
        rows[run.method.name] = {
            "guidance": run.config.sample.guidance,
            "steps": run.config.train.max_steps,
            "samples": run.num_samples,
            "measured": {m: measured_value(ev, m) for m in plan.metrics},
            "paper": {m: run.method.paper.get(m) for m in plan.metrics},
            "per_class_fid": ev.get("metrics", {}).get("per-class-fid", {}).get("values"),
            "sample_accuracy": ev.get("sample_accuracy"),
        }
    return {"bench": plan.name, "title": plan.spec.title, "scale": plan.scale, "metrics": plan.metrics,
            "skipped_metrics": plan.skipped,
            "metric_network": "bench classifier" if plan.use_classifier else "TF-Inception (recall: VGG16)",
            "methods": rows}


def write_report(plan, evaluations: dict) -> Path:
    results = collect(plan, evaluations)
    out = plan.out
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=1))
    with open(out / RESULTS_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "metric", "measured", "paper"])
        for name, row in results["methods"].items():
            for m in plan.metrics:
                writer.writerow([name, m, row["measured"][m], row["paper"][m]])
            if row["sample_accuracy"]:
                writer.writerow([name, "sample_accuracy", row["sample_accuracy"]["mean"], None])
    chart = per_class_chart(results, out / PER_CLASS_PNG)
    (out / RESULTS_MD).write_text(markdown(results, chart))
    return out / RESULTS_MD


def markdown(results: dict, chart: Path | None) -> str:
    metrics, rows = results["metrics"], results["methods"]
    has_acc = any(r["sample_accuracy"] for r in rows.values())
    # Without paper numbers (digits-lt, smoke) a "/ -" in every cell is noise: show ours only.
    has_paper = any(v is not None for r in rows.values() for v in r["paper"].values())
    head = ["method", "W", "steps"] + [f"{m} (ours / paper)" if has_paper else m for m in metrics]
    head += ["sample acc."] if has_acc else []
    note = ("Paper values: the CORAL paper's tables (they apply at scale `paper` only)." if has_paper
            else "The paper reports no values for this benchmark.")
    if results.get("skipped_metrics"):
        note += f" Not computed at this scale (too few samples): {', '.join(results['skipped_metrics'])}."
    lines = [f"# {results['title']}: bench at scale `{results['scale']}`", "",
             f"Metric network: {results['metric_network']}. {note}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [name, _fmt(row["guidance"]), str(row["steps"])]
        cells += [f"{_fmt(row['measured'][m])} / {_fmt(row['paper'][m])}" if has_paper else _fmt(row["measured"][m])
                  for m in metrics]
        if has_acc:
            cells.append(_fmt(row["sample_accuracy"]["mean"]) if row["sample_accuracy"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if has_acc:
        lines += per_class_accuracy_table(rows)
    if chart is not None:
        lines += ["", f"![per-class FID]({chart.name})"]
    lines += ["", "Sample grids: " + ", ".join(f"[{m}]({m}/grid.png)" for m in rows), ""]
    return "\n".join(lines)


def per_class_accuracy_table(rows: dict, max_classes: int = 10) -> list[str]:
    """How often the bench classifier recognises each class in that class's samples: where the
    long tail shows. Skipped when there are too many classes to read."""
    per_method = {m: r["sample_accuracy"]["per_class"] for m, r in rows.items() if r["sample_accuracy"]}
    n = len(next(iter(per_method.values())))
    if n > max_classes:
        return []
    head = ["method"] + [str(c) for c in range(n)]
    lines = ["", "Per-class sample accuracy (classes in label order: head to tail on a long-tailed set):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, acc in per_method.items():
        lines.append("| " + " | ".join([method] + [_fmt(a) for a in acc]) + " |")
    return lines


def per_class_chart(results: dict, path: Path) -> Path | None:
    """Grouped bars, one group per class, one bar per method (paper Figure 3)."""
    per_method = {m: r["per_class_fid"] for m, r in results["methods"].items() if r["per_class_fid"]}
    if not per_method:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = list(next(iter(per_method.values())))
    x = np.arange(len(classes))
    width = 0.8 / len(per_method)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(classes) * len(per_method) / 2), 3.5))
    for i, (method, values) in enumerate(per_method.items()):
        ax.bar(x + i * width - 0.4 + width / 2, [values.get(c, np.nan) for c in classes], width, label=method)
    ax.set_xticks(x, classes, rotation=45 if len(classes) > 10 else 0, fontsize=7 if len(classes) > 10 else 9)
    ax.set_ylabel("FID per class")
    ax.set_title(f"{results['title']} ({results['scale']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
