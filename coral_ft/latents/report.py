"""The latents report: one JSON document and the text tables printed from it.

JSON layout (`latents.json`): the settings (data set, split, timesteps, k, ...), the training
class counts with the head and tail classes read from them, the models, and `scores`: one record
per (model, timestep, feature kind) holding `overall` and `per_class` values of the scores of
`coral_ft.latents.scores` (null where a score does not apply, e.g. tail-into-head off the tail).
"""

from __future__ import annotations

import json
from pathlib import Path

from coral_ft.files import write_text_atomically
from coral_ft.latents.scores import SCORE_NAMES
from coral_ft.metrics.registry import format_value

REPORT_FILE = "latents.json"
TABLE_FILE = "latents.txt"
SHORT_NAMES = {"knn_purity": "purity", "silhouette": "silh", "tail_into_head": "tail>head", "probe_accuracy": "probe"}


def write_report(report: dict, out_dir: str | Path) -> Path:
    """latents.json (atomically: a reader never sees half a file) and latents.txt."""
    out_dir = Path(out_dir)
    path = out_dir / REPORT_FILE
    write_text_atomically(path, json.dumps(report, indent=2))
    (out_dir / TABLE_FILE).write_text(format_tables(report) + "\n")
    return path


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def overall_table(report: dict) -> str:
    header = ["model", "t", "features", *(SHORT_NAMES[s] for s in SCORE_NAMES)]
    rows = [
        [r["model"], str(r["timestep"]), r["features"], *(format_value(s, r["overall"][s]) for s in SCORE_NAMES)]
        for r in report["scores"]
    ]
    if report["scores"]:  # the same images for every record, so one chance row
        rows.append(["(chance)", "", "", *(format_value(s, report["scores"][0]["chance"][s]) for s in SCORE_NAMES)])
    return _table(header, rows)


def per_class_table(report: dict, timestep: int, features: str) -> str:
    """Rows = classes (with train count and group); per model: purity and tail-into-head."""
    records = [r for r in report["scores"] if r["timestep"] == timestep and r["features"] == features]
    head, tail = set(report["head_classes"]), set(report["tail_classes"])
    header = ["class", "train n", "group"]
    for r in records:
        header += [f"{r['model']} purity", f"{r['model']} tail>head"]
    rows = []
    for c, name in enumerate(report["class_names"]):
        group = "head" if c in head else "tail" if c in tail else ""
        row = [name, str(report["train_counts"][c]), group]
        for r in records:
            row += [format_value("knn_purity", r["per_class"]["knn_purity"][c]),
                    format_value("tail_into_head", r["per_class"]["tail_into_head"][c])]
        rows.append(row)
    return _table(header, rows)


def format_tables(report: dict) -> str:
    parts = [
        f"{report['dataset']} ({report['split']} split, up to {report['per_class']} per class, "
        f"{report['condition']} labels given{'' if report.get('noised', True) else ', clean images'}), "
        f"k = {report['k']}, head/tail = top/bottom {report['head_fraction']:.3g} of classes by training count",
        "",
        overall_table(report),
    ]
    seen = []
    for r in report["scores"]:
        key = (r["timestep"], r["features"])
        if key not in seen:
            seen.append(key)
            parts += ["", f"per class, t = {key[0]}, {key[1]}:", per_class_table(report, *key)]
    return "\n".join(parts)
