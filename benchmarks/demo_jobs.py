"""The demo's wall time with its trials one after another (`--jobs 1`) and two at a time
(`--jobs 2`), run back to back on the same machine, and whether both print the same table.

    python benchmarks/demo_jobs.py --out /tmp/demo-jobs      # about 12 minutes on 2 idle cores

Each variant runs `coral-ft bench digits-lt` from an empty folder (classifier, reference and every
trial), as `make demo` does from a fresh clone. The figures: wall and CPU seconds of each, their
ratio, and the comparison of the two results.json (every number but the measured costs) and of
each with the checked-in demo (docs/measurements/cpu/digits-demo/results.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import time
from pathlib import Path

from common import ROOT, coral_ft

CHECKED_IN = ROOT / "docs" / "measurements" / "cpu" / "digits-demo" / "results.json"


def numbers(path: Path) -> dict:
    """What the table says, per method: every measured metric's per-seed values."""
    results = json.loads(path.read_text())
    return {m: {k: v["values"] for k, v in r["measured"].items()} for m, r in results["methods"].items()}


def run(jobs: int, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    coral_ft(["bench", "digits-lt", "--jobs", str(jobs), "--out", str(out), "--no-progress"], stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo-jobs"))
    opts = parser.parse_args()
    figures = {jobs: run(jobs, opts.out / f"jobs-{jobs}") for jobs in (1, 2)}
    one, two = (numbers(opts.out / f"jobs-{j}" / "results.json") for j in (1, 2))
    for jobs, f in figures.items():
        print(f"--jobs {jobs}: wall {f['wall_s']:.0f} s ({f['wall_s'] / 60:.2f} min), CPU {f['cpu_s']:.0f} s")
    print(f"ratio of wall times, --jobs 2 / --jobs 1: {figures[2]['wall_s'] / figures[1]['wall_s']:.2f}")
    print(f"same numbers with --jobs 1 and --jobs 2: {one == two}")
    print(f"same numbers as the checked-in demo ({CHECKED_IN.name}): {two == numbers(CHECKED_IN)}")


if __name__ == "__main__":
    main()
