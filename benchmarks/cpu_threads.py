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
import tempfile

from common import make_trainer, random_data, timed, worker_json


def worker(preset: str, steps: int, threads: int) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        trainer = make_trainer("coral", preset, 64, random_data(preset), d)
        trainer.train_step()  # warm-up
        seconds = timed(lambda: [trainer.train_step() for _ in range(steps)])
    return {"steps_per_sec": steps / seconds, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="micro,small")
    parser.add_argument("--threads", default="1,0", help="thread counts; 0 = torch's default (one per core)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # PRESET STEPS THREADS: one count's process
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))))
        return
    counts = [int(t) for t in args.threads.split(",")]
    print(f"{os.cpu_count()} CPUs; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"CORAL training steps at batch 64, median of {args.rounds} interleaved rounds")
    for preset in args.presets.split(","):
        rates: dict[int, list[float]] = {t: [] for t in counts}
        used = {}
        for _ in range(args.rounds):
            for t in counts:
                result = worker_json([__file__, "--worker", preset, str(args.steps), str(t)])
                rates[t].append(result["steps_per_sec"])
                used[t] = result["threads"]
        med = {t: statistics.median(v) for t, v in rates.items()}
        base = med[counts[0]]
        cells = ", ".join(f"{used[t]} thread(s){' (torch default)' if t == 0 else ''}: {med[t]:.2f} steps/s "
                          f"({med[t] / base:.2f}x)" for t in counts)
        print(f"  {preset:6s} {cells}")


if __name__ == "__main__":
    main()
