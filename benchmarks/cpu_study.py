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
3. The bottleneck: `coral-ft latents` on the real test images for each seed's models (every
   method of the main phase whose weights are on disk and that no report scores yet; null and true
   labels, t = 100 and 500): k-NN purity, silhouette, tail-into-head, probe.
4. Collect: the raw numbers of phases 2 and 3 copied to docs/measurements/ (--measurements),
   where benchmarks/study_tables.py makes docs/study.md's tables from them.

    python benchmarks/cpu_study.py --threads 1 --jobs 2   # the whole study, two trials at a time
    python benchmarks/cpu_study.py --phase selection      # one phase
    python benchmarks/cpu_study.py --phase main --methods ddpm   # DDPM needs no selection
    python benchmarks/cpu_study.py --phase main --methods ccua,dispersive   # more methods, same seeds and classifier
    python benchmarks/cpu_study.py --phase latents --methods ddpm,coral,coral-null,ccua,dispersive
    python benchmarks/cpu_study.py --phase collect        # copy the raw numbers into docs/measurements/

Each run (2,000 steps, selection sweep, 2,000 reported samples, evaluation) takes about 45 minutes
on one core: two selection runs and three seeds of both methods about 4 hours on 2 cores.

Outputs under --out (default runs/cpu-study): selection/, main/, latents/, study.json.
Data: Debian's dataset-fashion-mnist package, or --data-root with Fashion-MNIST's IDX files.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from common import (
    GUIDANCE_SWEEP,
    RECIPE,
    SHARED_METRIC_FILES,
    collect_bench,
    collect_latents,
    copy_missing,
    coral_ft,
    csv,
    latents,
    study_options,
)

WEIGHTS = (0.01,)  # w of paper eq. 7 (the paper's value); --weights 0.01,0.1 widens the grid
TAU_RS = (0.4, 0.8)  # tau_r: the paper's best and a sharper concentration at low t
SELECTION_SEED = 100  # training seed of the selection runs; the reported runs use 0, 1, 2
SEEDS = 3


def jobs(opts) -> list[str]:
    """A bench's trials run this many at a time (each a process of its own: coral_ft.bench.fanout)."""
    return ["--jobs", str(opts.jobs)]


def selection_phase(opts) -> dict:
    scores = {}
    for w, tau_r in itertools.product(opts.weights, opts.tau_rs):
        out = opts.out / "selection" / f"w{w:g}-tau_r{tau_r:g}"
        selection_file = out / "coral" / "seed-0" / "selection" / "selection.json"
        if not selection_file.is_file():  # the score needs only the selection set, not the reported samples
            coral_ft(["bench", RECIPE, "--methods", "coral", "--seeds", "1", "--out", str(out),
                      "--set", f"train.seed={SELECTION_SEED}", "--set", f"objective.coral.weight={w}",
                      "--set", f"objective.coral.tau_r={tau_r}", *study_options(opts), *jobs(opts)], opts.threads)
        selection = json.loads(selection_file.read_text())
        scores[f"w={w:g}, tau_r={tau_r:g}"] = {"weight": w, "tau_r": tau_r, "chosen_W": selection["chosen"],
                                               "selection_fid": min(selection["fid"].values()), "fid_by_W": selection["fid"]}
    best = min(scores.values(), key=lambda s: s["selection_fid"])
    return {"grid": scores, "chosen": {"weight": best["weight"], "tau_r": best["tau_r"]}}


def share_metric_network(opts, out: Path) -> None:
    """Every phase scores with the same classifier and reference statistics: copied from the first
    selection run, so all FIDs share one feature space (and parallel benches do not race to build them)."""
    first = opts.out / "selection" / f"w{opts.weights[0]:g}-tau_r{opts.tau_rs[0]:g}"
    copy_missing([(first / name, out / name) for name in SHARED_METRIC_FILES])


def main_bench(opts, chosen: dict | None, methods: list[str]) -> list[str]:
    """The main phase's bench command for these methods (CORAL at the selection's w, tau_r)."""
    coral = ["--set", f"objective.coral.weight={chosen['weight']}", "--set", f"objective.coral.tau_r={chosen['tau_r']}"] if chosen else []
    return ["bench", RECIPE, "--methods", ",".join(methods), "--seeds", str(opts.seeds), "--out", str(opts.out / "main"),
            "--guidance-sweep", GUIDANCE_SWEEP, *coral, *study_options(opts), *jobs(opts)]


def main_phase(opts, chosen: dict | None) -> Path:
    """One bench over every method and seed: its trials run --jobs at a time (coral_ft.bench.fanout)."""
    out = opts.out / "main"
    share_metric_network(opts, out)
    coral_ft(main_bench(opts, chosen, opts.methods), opts.threads)
    return out / "results.json"


def scored(folders: list[Path], seed: int, condition: str) -> set[str]:
    """The methods a latents report of this seed and condition already scores, run or collected."""
    found = set()
    for folder in folders:
        for report in folder.glob(f"seed-{seed}-*{condition}/latents.json"):
            if report.parent.name.endswith(f"-{condition}"):
                found |= {m["name"] for m in json.loads(report.read_text())["models"]}
    return found


def latents_phase(opts) -> None:
    """Per seed, one `coral-ft latents` over the models of that seed no report scores yet (null
    labels: what the bottleneck holds of the image; true labels: what it holds once the class is
    given). A restored checkout holds the trials' numbers but only some of their weights: each model
    is scored once, from whichever session still had it, and the study's table averages each
    method over the reports that score it."""
    for seed in range(opts.seeds):
        models = [(m, opts.out / "main" / m / f"seed-{seed}" / "run") for m in opts.methods]
        models = [(m, path) for m, path in models if (path / "model").is_dir()]
        for condition in ("null", "true"):
            done = scored([opts.out / "latents", opts.measurements / "latents"], seed, condition)
            todo = [(m, path) for m, path in models if m not in done]
            if todo:
                latents(opts, todo, condition, opts.out / "latents" / f"seed-{seed}-{'-'.join(m for m, _ in todo)}-{condition}")


def collect_phase(opts, summary: dict) -> None:
    """The joint report of every method's finished trials (nothing trained), then the copies."""
    dest = opts.measurements
    coral_ft([*main_bench(opts, summary.get("selection", {}).get("chosen"), opts.methods), "--report"], opts.threads)
    collect_bench(opts.out / "main", dest)
    for report in sorted((opts.out / "latents").glob("seed-*")):
        collect_latents(report, dest / "latents" / report.name)
    (dest / "study.json").write_text(json.dumps({"selection": summary.get("selection")}, indent=1))
    print(f"raw numbers -> {dest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cpu-study"))
    parser.add_argument("--data-root", default=None, help="Folder with Fashion-MNIST's IDX files (default: Debian's).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per command (default: torch's).")
    parser.add_argument("--phase", choices=("all", "selection", "main", "latents", "collect"), default="all")
    parser.add_argument("--measurements", type=Path, default=Path("docs/measurements/cpu/fashion-scratch"),
                        help="Where the collect phase copies the raw numbers (checked in).")
    parser.add_argument("--jobs", type=int, default=1, help="Trials at once (the bench's --jobs).")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="Training seeds per method in the main phase.")
    parser.add_argument("--methods", type=csv(str), default=["ddpm", "coral"], help="Methods of the main phase.")
    parser.add_argument("--weights", type=csv(float), default=list(WEIGHTS), help="CORAL w grid of the selection phase.")
    parser.add_argument("--tau-rs", type=csv(float), default=list(TAU_RS), help="CORAL tau_r grid of the selection phase.")
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    summary_path = opts.out / "study.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    needs_selection = opts.phase in ("all", "selection") or (opts.phase == "main" and "coral" in opts.methods)
    if needs_selection and (opts.phase in ("all", "selection") or "selection" not in summary):
        summary["selection"] = selection_phase(opts)
        summary_path.write_text(json.dumps(summary, indent=1))
    if opts.phase in ("all", "main"):
        results = main_phase(opts, summary.get("selection", {}).get("chosen"))
        if opts.methods == ["ddpm", "coral"]:  # a one-method run leaves the summary to the joint one
            summary["main"] = str(results)
            summary_path.write_text(json.dumps(summary, indent=1))
    if opts.phase in ("all", "latents"):
        latents_phase(opts)
    if opts.phase in ("all", "collect"):
        collect_phase(opts, summary)
    print(json.dumps(summary.get("selection", {}).get("chosen")), "->", opts.out / "main" / "results.md")


if __name__ == "__main__":
    main()
