"""Peak memory of improved precision/recall on N x N random D-d features (default 50k, 4096-d).

The distances are computed in row blocks (coral_ft/metrics/precision_recall.py), so memory is
the two feature sets (2 x N x D float32, 1.6 GB at 50k x 4096) plus a few (block, N) buffers,
never an N x N matrix. Target (issue 3): peak < 4 GiB. Prints one JSON line with the peak
resident memory of this process (CPU) or the peak allocated GPU memory (--device cuda), the
memory above the process's baseline, and the wall time.

    nice python benchmarks/prc_memory.py                   # CPU, the full 50k x 50k (minutes)
    python benchmarks/prc_memory.py --device cuda
    python benchmarks/prc_memory.py --n 5000 --dim 512      # a quick look
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import peak_rss_bytes, timed

from coral_ft.metrics.precision_recall import DEFAULT_BLOCK, precision_recall

GIB = 1 << 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="points per set")
    parser.add_argument("--dim", type=int, default=4096, help="feature dimension (VGG16 fc2: 4096)")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK, help="rows per distance block")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    baseline = peak_rss_bytes()
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    ref = rng.standard_normal((args.n, args.dim), dtype=np.float32) + 0.1
    inputs = samples.nbytes + ref.nbytes
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = {}
    seconds = timed(lambda: result.setdefault("pr", precision_recall(samples, ref, block=args.block, device=args.device)))
    pr = result["pr"]
    report = {
        "n": args.n, "dim": args.dim, "block": args.block, "device": args.device, "k": pr.k,
        "precision": round(pr.precision, 4), "recall": round(pr.recall, 4), "seconds": round(seconds, 1),
        "input_features_gib": round(inputs / GIB, 3),
        "peak_rss_gib": round(peak_rss_bytes() / GIB, 3),
        "peak_rss_above_start_gib": round((peak_rss_bytes() - baseline) / GIB, 3),
    }
    if args.device.startswith("cuda"):
        report["peak_gpu_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
    report["target_met"] = (report.get("peak_gpu_allocated_gib") or report["peak_rss_gib"]) < 4.0
    print(json.dumps(report))


if __name__ == "__main__":
    main()
