"""The CPU-scale study of docs/study.md: does CORAL help the tail where a 2-core CPU can tell?

Fashion-MNIST-LT (rho = 0.01) at 16x16, the 2.7M-parameter `small` U-Net, 2,000 steps of batch 64
(recipes/fashion-mnist-lt.toml). Three phases, each a `coral-ft` command whose every stage is
resumable, so the script can be killed and run again at any time:

1. Selection of CORAL's w and tau_r: one CORAL run per grid point with a training seed (100)
   that the reported runs never use; score = FID on a selection set at the best W of the
   guidance sweep (selection samples only). The best point goes on.
2. The comparison: DDPM and CORAL (the chosen w, tau_r), training seeds 0, 1, 2, each with W
   chosen per trial on its own selection set, reported on 2,000 other samples; means, 95%
   intervals and paired differences by class group (results.md).
3. The bottleneck: `coral-ft latents` on the real test images for each seed's DDPM and CORAL
   model (null labels, t = 100 and 500): k-NN purity, silhouette, tail-into-head, probe.

    python benchmarks/cpu_study.py                       # the whole study (about 5 h on 2 cores)
    python benchmarks/cpu_study.py --threads 1 &         # beside other work, one core
    python benchmarks/cpu_study.py --phase selection     # one phase

Outputs under --out (default runs/cpu-study): selection/, main/, latents/, study.json.
Data: Debian's dataset-fashion-mnist package, or --data-root with Fashion-MNIST's IDX files.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

RECIPE = "fashion-mnist-lt"
WEIGHTS = (0.01, 0.1)  # w of paper eq. 7: the paper's value and ten times it
TAU_RS = (0.4, 0.8)  # tau_r: the paper's best and a sharper concentration at low t
SELECTION_SEED = 100  # training seed of the selection runs; the reported runs use 0, 1, 2
SEEDS = 3
LATENT_TIMESTEPS = "100,500"


def run(args: list[str], threads: int | None) -> None:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "coral_ft", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def common(opts) -> list[str]:
    extra = ["--no-progress"]
    if opts.data_root:
        extra += ["--data-root", opts.data_root]
    return extra


def selection_phase(opts) -> dict:
    scores = {}
    for w, tau_r in itertools.product(WEIGHTS, TAU_RS):
        out = opts.out / "selection" / f"w{w:g}-tau_r{tau_r:g}"
        run(["bench", RECIPE, "--methods", "coral", "--seeds", "1", "--out", str(out),
             "--set", f"train.seed={SELECTION_SEED}", "--set", f"objective.coral.weight={w}",
             "--set", f"objective.coral.tau_r={tau_r}", *common(opts)], opts.threads)
        selection = json.loads((out / "coral" / "seed-0" / "selection" / "selection.json").read_text())
        scores[f"w={w:g}, tau_r={tau_r:g}"] = {"weight": w, "tau_r": tau_r, "chosen_W": selection["chosen"],
                                               "selection_fid": min(selection["fid"].values()), "fid_by_W": selection["fid"]}
    best = min(scores.values(), key=lambda s: s["selection_fid"])
    return {"grid": scores, "chosen": {"weight": best["weight"], "tau_r": best["tau_r"]}}


def main_phase(opts, chosen: dict) -> Path:
    out = opts.out / "main"
    run(["bench", RECIPE, "--methods", "ddpm,coral", "--seeds", str(SEEDS), "--out", str(out),
         "--set", f"objective.coral.weight={chosen['weight']}", "--set", f"objective.coral.tau_r={chosen['tau_r']}",
         *common(opts)], opts.threads)
    return out / "results.json"


def latents_phase(opts) -> dict:
    reports = {}
    for seed in range(SEEDS):
        out = opts.out / "latents" / f"seed-{seed}"
        if not (out / "latents.json").is_file():
            models = [opts.out / "main" / m / f"seed-{seed}" / "run" for m in ("ddpm", "coral")]
            run(["latents", "--model", str(models[0]), "--model", str(models[1]), "--name", "ddpm", "--name", "coral",
                 "--condition", "null", "--timesteps", LATENT_TIMESTEPS, "--out", str(out), *common(opts)], opts.threads)
        reports[f"seed-{seed}"] = str(out / "latents.json")
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cpu-study"))
    parser.add_argument("--data-root", default=None, help="Folder with Fashion-MNIST's IDX files (default: Debian's).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per command (default: torch's).")
    parser.add_argument("--phase", choices=("all", "selection", "main", "latents"), default="all")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    summary_path = opts.out / "study.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if opts.phase in ("all", "selection") or "selection" not in summary:
        summary["selection"] = selection_phase(opts)
        summary_path.write_text(json.dumps(summary, indent=1))
    if opts.phase in ("all", "main"):
        summary["main"] = str(main_phase(opts, summary["selection"]["chosen"]))
        summary_path.write_text(json.dumps(summary, indent=1))
    if opts.phase in ("all", "latents"):
        summary["latents"] = latents_phase(opts)
        summary_path.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["selection"]["chosen"]), "->", opts.out / "main" / "results.md")


if __name__ == "__main__":
    main()
