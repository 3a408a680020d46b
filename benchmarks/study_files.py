"""Copy a study's raw numbers from its run folders (runs/, never committed) into
docs/measurements/ (committed), where benchmarks/study_tables.py reads them.

What is kept of a bench folder: the report (results.json / .csv / .md and its figures), and per
trial its eval.json, the W selection, the training cost and its metrics.jsonl (the loss terms
over steps), plus the metric classifier, so that later runs can score in the same feature space.
Samples, checkpoints and models stay behind (megabytes each). Copying again overwrites: the
files always say what the runs say now.

    python benchmarks/study_files.py runs/cpu-study/main docs/measurements/cpu/fashion-scratch
    python benchmarks/study_files.py runs/cpu-study/main docs/measurements/cpu/fashion-scratch --restore
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REPORT_FILES = ("results.json", "results.csv", "results.md", "per_class_fid.png", "guidance_sweep.png", "classifier.pt")
TRIAL_FILES = {"eval.json": "eval.json", "selection/selection.json": "selection.json",
               "train.done.json": "train.json", "run/metrics.jsonl": "metrics.jsonl"}


def collect_bench(bench: Path, dest: Path) -> list[Path]:
    """Copy the report and every finished trial's files; returns what was written."""
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (bench / name).is_file():
            shutil.copy2(bench / name, dest / name)
            written.append(dest / name)
    for done in sorted(bench.glob("*/seed-*/eval.json")):
        trial = done.parent
        target = dest / trial.parent.name / trial.name
        target.mkdir(parents=True, exist_ok=True)
        for source, name in TRIAL_FILES.items():
            if (trial / source).is_file():
                shutil.copy2(trial / source, target / name)
                written.append(target / name)
    return written


def restore_bench(saved: Path, bench: Path) -> list[Path]:
    """The reverse of collect_bench, for a fresh checkout (runs/ is never committed): the metric
    classifier and every collected trial's files back into a bench folder, so the bench scores in
    the same feature space and skips the trials already evaluated (a trial with eval.json is done).
    Files already in the bench folder are kept."""
    written = []
    pairs = [(saved / "classifier.pt", bench / "classifier.pt")]
    for done in sorted(saved.glob("*/seed-*/eval.json")):
        trial = bench / done.parent.parent.name / done.parent.name
        pairs += [(done.parent / name, trial / source) for source, name in TRIAL_FILES.items()]
    for source, target in pairs:
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            written.append(target)
    return written


def collect_latents(folder: Path, dest: Path) -> list[Path]:
    """A `coral-ft latents` output's text and JSON reports."""
    written = []
    for name in ("latents.txt", "latents.json"):
        if (folder / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / name, dest / name)
            written.append(dest / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--restore", action="store_true",
                        help="the other way: copy the collected files in DEST back into the bench folder")
    args = parser.parse_args()
    if args.restore:
        print(f"{len(restore_bench(args.dest, args.bench))} files -> {args.bench}")
    else:
        print(f"{len(collect_bench(args.bench, args.dest))} files -> {args.dest}")


if __name__ == "__main__":
    main()
