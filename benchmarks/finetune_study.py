"""The fine-tuning study of docs/study.md: does fine-tuning a pretrained DDPM with CORAL (full or
LoRA) give better tail classes than fine-tuning the same base with plain DDPM for the same budget?

Fashion-MNIST-LT (rho = 0.01) at 16x16, the `small` U-Net (recipes/fashion-mnist-lt.toml), the
bench's fine-tune protocol (`coral-ft bench --protocol finetune`): every arm fine-tunes one base
for 1,000 steps at the recipe's schedule, W chosen per trial on its own selection set, 2,000
reported samples, paired differences against the `ddpm` (full) arm on the same fine-tune seed.
Arms: ddpm, coral, coral-null, each fine-tuning every weight and with LoRA. Two bases:

- `lt`: the from-scratch study's long-tailed DDPM, seed 0 (2,000 steps; benchmarks/cpu_study.py
  trains it if it is missing), given to the bench as `--base`;
- `uncond`: an unconditional DDPM the bench trains on the balanced set (`--base-kind
  uncond-balanced`, 2,000 steps): the public-checkpoint case, where fine-tuning adds the class
  embedding.

CORAL's w and tau_r are the from-scratch study's selection (study.json there); every bench scores
with the from-scratch study's classifier and reference statistics (copied), so all FIDs share one
feature space. Every stage resumes after a kill; `--jobs 2` runs two trials at a time (the bench's
own fan-out, one core each with --threads 1) and the bench writes the report when the last ends.

    python benchmarks/finetune_study.py --phase restore                      # a fresh checkout: runs/ from docs/measurements/
    python benchmarks/finetune_study.py --threads 1 --jobs 2                 # both bases, 5 fine-tune seeds
    python benchmarks/finetune_study.py --bases lt --seeds 8                 # more seeds (resumes the first 5)
    python benchmarks/finetune_study.py --phase latents                      # null- and true-label latents per seed
    python benchmarks/finetune_study.py --phase collect                      # raw numbers -> docs/measurements/

Outputs under --out (default runs/ft-study): lt/, uncond/ (bench folders), latents/.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    restore_bench,
    study_options,
)

ARMS = ("ddpm", "coral", "coral-null", "ddpm-lora", "coral-lora", "coral-null-lora")
SEEDS = 5


def coral_settings(scratch: Path) -> list[str]:
    """CORAL's w and tau_r as the from-scratch study's selection chose them."""
    summary = scratch / "study.json"
    chosen = json.loads(summary.read_text())["selection"]["chosen"] if summary.is_file() else {"weight": 0.01, "tau_r": 0.4}
    return ["--set", f"objective.coral.weight={chosen['weight']}", "--set", f"objective.coral.tau_r={chosen['tau_r']}"]


def lt_base(opts) -> Path:
    """The from-scratch study's DDPM, seed 0: trained (with its own evaluation) if missing."""
    run_dir = base_run(opts, "lt")
    if not base_finished(opts, "lt"):
        coral_ft(["bench", RECIPE, "--methods", "ddpm", "--seeds", "1", "--guidance-sweep", GUIDANCE_SWEEP,
                  "--out", str(opts.scratch / "main"), *study_options(opts)], opts.threads)
    return run_dir


BASE_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "coral_ft.json")


def base_run(opts, base: str) -> Path:
    """The run folder the arms fine-tune: the from-scratch study's DDPM seed 0 (lt), or the run the
    bench trained as its `base` arm (uncond)."""
    return opts.scratch / "main" / "ddpm" / "seed-0" / "run" if base == "lt" else opts.out / base / "base" / "seed-0" / "run"


def base_finished(opts, base: str) -> bool:
    """The LT base is ready once trained (its arms need only its weights); the uncond base is the
    bench's own `base` trial, kept only when finished, since restore leaves unfinished trials out."""
    trial = base_run(opts, base).parent
    return (trial / ("train.done.json" if base == "lt" else "eval.json")).is_file()


def keep_base(opts, base: str) -> None:
    """Check in a base's weights and run config beside the raw numbers (retraining reproduces them
    bit for bit on one thread, but takes a from-scratch trial's time), so a fresh checkout
    fine-tunes without training the base again (runs/ is never committed)."""
    run_dir = base_run(opts, base)
    dest = opts.measurements / f"{base}-base"
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*BASE_MODEL_FILES, "../config.toml"):
        if (run_dir / "model" / name).is_file():
            shutil.copy2(run_dir / "model" / name, dest / Path(name).name)


def restore_base(opts, base: str) -> None:
    """A kept base's weights back as its run's model folder. The LT base's marker (restored from the
    collected train.json) is pointed at it; the uncond base's trial is finished (its eval.json was
    restored), so the bench takes its marker as it is and only the arms read the run's model."""
    saved, run_dir = opts.measurements / f"{base}-base", base_run(opts, base)
    if not saved.is_dir() or (run_dir / "model").is_dir():
        return
    (run_dir / "model").mkdir(parents=True)
    for name in BASE_MODEL_FILES:
        shutil.copy2(saved / name, run_dir / "model" / name)
    shutil.copy2(saved / "config.toml", run_dir / "config.toml")
    if base == "lt":
        marker = run_dir.parent / "train.done.json"
        info = json.loads(marker.read_text())
        marker.write_text(json.dumps({**info, "model": str((run_dir / "model").resolve())}, indent=1))


def restore_phase(opts) -> None:
    """A fresh checkout: every collected trial of both studies back into runs/ (a trial with
    eval.json is finished), the from-scratch study's selection, and the kept bases' weights (the LT
    base as the from-scratch DDPM seed 0's run), so nothing collected is trained again."""
    scratch_saved = opts.measurements.parent / "fashion-scratch"
    restore_bench(scratch_saved, opts.scratch / "main")
    copy_missing([(scratch_saved / "study.json", opts.scratch / "study.json")])
    for base in opts.bases:
        if (opts.measurements / base).is_dir():
            restore_bench(opts.measurements / base, opts.out / base)
            for saved in sorted((opts.measurements / "latents").glob(f"{base}-seed-*")):
                if not (opts.out / "latents" / saved.name).exists():
                    shutil.copytree(saved, opts.out / "latents" / saved.name)
    for base in dict.fromkeys(("lt", *opts.bases)):  # the LT base also serves the from-scratch study
        restore_base(opts, base)
    print(f"restored {opts.out} and {opts.scratch} from {opts.measurements.parent}")


def share_metric_network(opts, out: Path) -> None:
    copy_missing([(opts.scratch / "main" / name, out / name) for name in SHARED_METRIC_FILES])


def finetune_bench(opts, base: str, arms: list[str], seeds: int) -> list[str]:
    """The bench command fine-tuning `base` (lt | uncond) with these arms and fine-tune seeds."""
    base_args = ["--base", str(lt_base(opts))] if base == "lt" else ["--base-kind", "uncond-balanced"]
    return ["bench", RECIPE, "--protocol", "finetune", *base_args, "--arms", ",".join(arms),
            "--seeds", str(seeds), "--guidance-sweep", GUIDANCE_SWEEP, "--out", str(opts.out / base),
            *coral_settings(opts.scratch), *study_options(opts)]


def bench_phase(opts, base: str) -> Path:
    """One bench over every arm and fine-tune seed: the base first, then the arms --jobs at a time,
    every arm's seed i before any arm's seed i + 1 (coral_ft.bench.fanout), so a study stopped
    part-way has the same seeds in every arm."""
    out = opts.out / base
    share_metric_network(opts, out)
    coral_ft([*finetune_bench(opts, base, opts.arms, opts.seeds), "--jobs", str(opts.jobs)], opts.threads)
    return out / "results.json"


def latents_phase(opts) -> None:
    """Null-label and true-label bottleneck scores for the base and every arm, once per fine-tune
    seed whose every arm's weights are on disk (a restored checkout holds only the trials' numbers,
    so a seed with an arm missing would give a table of unlike rows)."""
    for base in opts.bases:
        folder = opts.out / base
        for seed in range(opts.seeds):
            models = [(arm, folder / arm / f"seed-{seed}" / "run") for arm in opts.arms]
            if not all((path / "model").is_dir() for _, path in models):
                continue
            for condition in ("null", "true"):
                out = opts.out / "latents" / f"{base}-seed-{seed}-{condition}"
                if not (out / "latents.json").is_file():
                    latents(opts, [("base", base_run(opts, base)), *models], condition, out)


def collect_phase(opts) -> None:
    """Each base's report of its finished trials (nothing trained), then the copies (and each
    finished base's weights, once)."""
    for base in opts.bases:
        if any((opts.out / base).glob("*/seed-*/eval.json")):
            coral_ft([*finetune_bench(opts, base, opts.arms, opts.seeds), "--report"], opts.threads)
            collect_bench(opts.out / base, opts.measurements / base)
        for report in sorted((opts.out / "latents").glob(f"{base}-seed-*")):
            collect_latents(report, opts.measurements / "latents" / report.name)
    for base in opts.bases:
        if base_finished(opts, base) and not (opts.measurements / f"{base}-base").is_dir():
            keep_base(opts, base)
    print(f"raw numbers -> {opts.measurements}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ft-study"))
    parser.add_argument("--scratch", type=Path, default=Path("runs/cpu-study"), help="the from-scratch study's folder")
    parser.add_argument("--data-root", default=None, help="Folder with Fashion-MNIST's IDX files (default: Debian's).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per command (default: torch's).")
    parser.add_argument("--jobs", type=int, default=1, help="Trials at once (the bench's --jobs).")
    parser.add_argument("--phase", choices=("restore", "all", "bench", "latents", "collect"), default="all",
                        help="restore: a fresh checkout's runs/ from the checked-in files (run it first)")
    parser.add_argument("--measurements", type=Path, default=Path("docs/measurements/cpu/fashion-finetune"),
                        help="Where the collect phase copies the raw numbers (checked in).")
    parser.add_argument("--bases", type=csv(str), default=["lt", "uncond"], help="lt, uncond or both.")
    parser.add_argument("--arms", type=csv(str), default=list(ARMS))
    parser.add_argument("--seeds", type=int, default=SEEDS, help="Fine-tune seeds per arm.")
    opts = parser.parse_args()
    if opts.phase == "restore":
        restore_phase(opts)
        return
    for base in opts.bases:
        if opts.phase in ("all", "bench"):
            print(f"{base}: {bench_phase(opts, base)}", flush=True)
    if opts.phase in ("all", "latents"):
        latents_phase(opts)
    if opts.phase in ("all", "collect"):
        collect_phase(opts)


if __name__ == "__main__":
    main()
