"""How long the `coral-ft` command takes to start, against a bare `import torch` in the same run.

Targets: `--version`, `--help`, `config recipes` and shell completion under 1 s from a fresh
process (they import neither torch nor diffusers); every other command's start at most 1 s more
than `python -c "import torch"`. A command's own --help imports no torch either, and we aim it
under 1 s too (typer's rich help costs about 0.4 s of imports): both figures are printed. Each command runs `--repeats` times, the commands interleaved;
medians of the wall time.

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAST_LIMIT = 1.0  # seconds, for the commands that must not import torch
OVER_TORCH_LIMIT = 1.0  # seconds over `import torch`, for the others


def commands(exe: str, scratch: str) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (argv, extra environment, kind: "fast" | "help" | "torch" | "reference")."""
    complete = {"_CORAL_FT_COMPLETE": "complete_bash", "COMP_WORDS": "coral-ft train --recipe ", "COMP_CWORD": "3"}
    return {
        "python -c 'import torch'": ([sys.executable, "-c", "import torch"], {}, "reference"),
        "coral-ft --version": ([exe, "--version"], {}, "fast"),
        "coral-ft --help": ([exe, "--help"], {}, "fast"),
        "coral-ft config recipes": ([exe, "config", "recipes"], {}, "fast"),
        "completion of --recipe": ([exe], complete, "fast"),
        "coral-ft train --help": ([exe, "train", "--help"], {}, "help"),
        "coral-ft config show": ([exe, "config", "show"], {}, "torch"),
        "coral-ft train --dry-run": ([exe, "train", "--from-scratch", "--out", f"{scratch}/r", "--dry-run"], {}, "torch"),
        "coral-ft sample --help": ([exe, "sample", "--help"], {}, "help"),
    }


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    exe = shutil.which("coral-ft") or str(Path(sys.executable).with_name("coral-ft"))
    with tempfile.TemporaryDirectory() as scratch:
        cmds = commands(exe, scratch)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeats):
            for name, (argv, env, _) in cmds.items():
                times[name].append(wall(argv, env))
    med = {name: statistics.median(v) for name, v in times.items()}
    torch_s = med["python -c 'import torch'"]
    print(f"median wall time of {args.repeats} runs each (interleaved), {os.cpu_count()} CPUs")
    print(f"  {'command':32s} {'seconds':>8s}  target")
    for name, (_, _, kind) in cmds.items():
        if kind == "reference":
            verdict = "(reference)"
        elif kind == "fast":
            verdict = f"< {FAST_LIMIT:g} s: {'met' if med[name] < FAST_LIMIT else 'MISSED'}"
        else:
            over = med[name] - torch_s
            verdict = f"<= import torch + {OVER_TORCH_LIMIT:g} s ({over:+.2f} s): {'met' if over <= OVER_TORCH_LIMIT else 'MISSED'}"
            if kind == "help":
                verdict += f"; our aim < {FAST_LIMIT:g} s: {'met' if med[name] < FAST_LIMIT else 'missed'}"
        print(f"  {name:32s} {med[name]:8.2f}  {verdict}")


if __name__ == "__main__":
    main()
