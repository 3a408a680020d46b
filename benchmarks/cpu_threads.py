"""Training steps/s on the CPU against torch's thread count, for the small presets the CPU recipes use.

torch starts one thread per core. For the small U-Nets of the CPU recipes (digits' `micro`,
Fashion-MNIST's `small`) a step is many small operators, and on a machine whose cores are busy
with other work a thread per core spends its time waiting for the slowest thread; this script
measures it, to choose `runtime.threads`' default. Each thread count runs in its own process
(torch's pool is sized once per process), the counts interleaved over `--rounds`.

    python benchmarks/cpu_threads.py                       # micro and small, 1 thread and torch's default
    python benchmarks/cpu_threads.py --threads 1,2,4 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

STEP_SCRIPT = """
import json, sys, tempfile, time, torch
threads = int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)
sys.path.insert(0, sys.argv[4])
from step_cost import make_trainer, random_data
with tempfile.TemporaryDirectory() as d:
    trainer = make_trainer("coral", sys.argv[1], 64, random_data(sys.argv[1]), d)
    trainer.train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        trainer.train_step()
    print(json.dumps({"steps_per_sec": int(sys.argv[2]) / (time.perf_counter() - start), "threads": torch.get_num_threads()}))
"""


def steps_per_sec(preset: str, steps: int, threads: int) -> tuple[float, int]:
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", STEP_SCRIPT, preset, str(steps), str(threads), here],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["steps_per_sec"], result["threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="micro,small")
    parser.add_argument("--threads", default="1,0", help="thread counts; 0 = torch's default (one per core)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    print(f"{os.cpu_count()} CPUs; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"CORAL training steps at batch 64, median of {args.rounds} interleaved rounds")
    for preset in args.presets.split(","):
        rates: dict[int, list[float]] = {t: [] for t in counts}
        used = {}
        for _ in range(args.rounds):
            for t in counts:
                rate, used[t] = steps_per_sec(preset, args.steps, t)
                rates[t].append(rate)
        med = {t: statistics.median(v) for t, v in rates.items()}
        base = med[counts[0]]
        cells = ", ".join(f"{used[t]} thread(s){' (torch default)' if t == 0 else ''}: {med[t]:.2f} steps/s "
                          f"({med[t] / base:.2f}x)" for t in counts)
        print(f"  {preset:6s} {cells}")


if __name__ == "__main__":
    main()
