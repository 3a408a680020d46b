"""What the benchmark scripts share: this checkout's coral_ft, the timer, trainers on random data,
child processes, and the studies' commands and raw-number files. Each script runs as
`python benchmarks/X.py`, which puts this folder on sys.path: `from common import ...` needs no
more. torch and coral_ft are imported where used, so the scripts that need neither start fast.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # coral_ft from this checkout, installed or not (a worktree has its own)

SHAPES = {"micro": (1, 8), "tiny": (1, 16), "small": (1, 16), "ddpm-cifar": (3, 32), "ddpm-64": (3, 64)}  # (channels, size)


# -- timing: device-synchronised wall time, variants interleaved, medians (shared machines are noisy:
# compare variants timed side by side, never across runs) -------------------------------------------
def synchronize() -> None:
    """Wait for the GPU's queued work (a no-op on a CPU), so a timer sees the work it started."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes, device work included."""
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def interleaved_medians(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each variant, the variants run in turn (a, b, c, a, b, c, ...) so that
    machine noise hits all of them alike; the first `warmup` rounds are not counted."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + repeats):
        for name, fn in variants.items():
            seconds = timed(fn)
            if i >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(v) for name, v in times.items()}


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"


def peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# -- training steps and guided sampling on random data ----------------------------------------------
VARIANTS = {  # the GPU fast path's variants: name -> (train.mixed_precision, channels_last, compile, compile mode)
    "fp32": ("no", False, False, "default"),
    "bf16": ("bf16", False, False, "default"),
    "bf16+cl": ("bf16", True, False, "default"),
    "bf16+compile": ("bf16", False, True, "default"),
    "bf16+cl+compile": ("bf16", True, True, "default"),
    "bf16+cl+cudagraphs": ("bf16", True, True, "reduce-overhead"),
}


def random_data(preset: str, num_classes: int = 10, per_class: int = 64):
    """Random uint8 images of the preset's shape (a step's cost does not depend on content)."""
    import torch

    from coral_ft.data.registry import LabeledImages

    channels, size = SHAPES[preset]
    g = torch.Generator().manual_seed(0)
    n = num_classes * per_class
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return LabeledImages(images, torch.arange(n) % num_classes, [str(i) for i in range(num_classes)])


def make_trainer(method: str, preset: str, batch_size: int, data, workdir: str, sets=()):
    """A trainer of a bench method or variant (coral-null) on in-memory data, its config made as the
    bench makes a trial's (coral_ft.bench.plan.run_config) from the defaults and `sets`."""
    from coral_ft.bench.plan import run_config
    from coral_ft.config import apply_overrides, config_from_dict
    from coral_ft.train.trainer import Trainer

    config = run_config(config_from_dict(apply_overrides({}, list(sets))), method,
                        {"model.preset": preset, "train.batch_size": batch_size})
    return Trainer(config, f"{workdir}/{method}", progress=False, data=data)


def training_times(methods: list[str], variants: list[str], args, data, workdir) -> dict[str, float]:
    """Median seconds per step of every (method, variant), their steps interleaved round-robin so
    that clock ramps and drift hit all alike; compiled variants are warmed through compilation."""
    from accelerate.state import AcceleratorState

    trainers = {}
    for method in methods:
        for variant in variants:
            precision, channels_last, compiled, mode = VARIANTS[variant]
            sets = [f'train.mixed_precision="{precision}"', f"train.channels_last={str(channels_last).lower()}",
                    f"train.compile={str(compiled).lower()}", f'train.compile_mode="{mode}"']
            AcceleratorState._reset_state(True)  # one process, several precisions: accelerate keeps one state
            trainer = make_trainer(method, args.preset, args.batch_size, data, f"{workdir}/{method}-{variant}", sets)
            for _ in range(args.warmup + (5 if compiled else 0)):
                trainer.train_step()
            trainers[f"{method}/{variant}"] = trainer
    return interleaved_medians({k: t.train_step for k, t in trainers.items()}, args.steps, warmup=0)


def time_sampling(variant: str, samplers: list[str], args, device) -> dict[str, float]:
    """Seconds per guided denoising step for args.sample_batch images, per sampler (one model:
    `ddim` with eta 0 draws no step noise, so ddpm - ddim is the cost of the per-sample noise)."""
    import torch

    from coral_ft.config import SampleConfig
    from coral_ft.models.presets import build_unet
    from coral_ft.models.schedule import make_scheduler
    from coral_ft.sample.labels import sample_seeds
    from coral_ft.sample.samplers import sample

    precision, channels_last, compiled, mode = VARIANTS[variant]
    channels, size = SHAPES[args.preset]
    torch.manual_seed(0)
    unet = build_unet(args.preset, size, channels, 10).to(device).eval()
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    net = torch.compile(unet, mode=mode) if compiled else unet
    labels = torch.arange(args.sample_batch) % 10
    seeds = sample_seeds(0, range(args.sample_batch))
    scheduler = make_scheduler()
    out = {}
    for name in samplers:
        settings = SampleConfig(guidance=1.0, sampler=name, steps=args.timed_sample_steps, precision=precision)
        # the first round warms up (and compiles)
        run = interleaved_medians({name: lambda s=settings: sample(net, scheduler, labels, seeds, s)}, args.sample_rounds)
        out[name] = run[name] / args.timed_sample_steps
    return out


# -- child processes ------------------------------------------------------------------------------
def worker_json(args: list[str], env: dict[str, str] | None = None) -> dict:
    """`python ARGS` (a script's worker mode, in a process of its own so that its thread pool and
    peak memory are its own) -> the JSON object its last line prints."""
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def coral_ft(args: list[str], threads: int | None = None, **options) -> None:
    """One coral-ft command in a process of its own; `threads` also sizes the BLAS pools (FID's
    matrix square root), as every reported run was made. `options` go to subprocess.run."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "coral_ft", *args]
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, env=env, **options).returncode:
        raise SystemExit(f"failed: coral-ft {' '.join(args)}; run the script again to resume it")


# -- the studies (cpu_study.py, finetune_study.py) -----------------------------------------------
RECIPE = "fashion-mnist-lt"
GUIDANCE_SWEEP = "0.5,1"  # what the from-scratch selection found best (W = 0 and 2 far worse)
LATENT_TIMESTEPS = "100,500"
SHARED_METRIC_FILES = ("classifier.pt", "reference.npz", "memorisation.npz")


def csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def study_options(opts) -> list[str]:
    return ["--no-progress", *(["--data-root", opts.data_root] if opts.data_root else [])]


def latents(opts, models: list[tuple[str, Path]], condition: str, out: Path) -> None:
    """`coral-ft latents` over these (name, run folder) models, with null or true labels."""
    pairs = [a for name, path in models for a in ("--model", str(path), "--name", name)]
    coral_ft(["latents", *pairs, "--condition", condition, "--timesteps", LATENT_TIMESTEPS, "--plot", "none",
              "--out", str(out), *study_options(opts)], opts.threads)


def copy_missing(pairs: list[tuple[Path, Path]]) -> list[Path]:
    """Copy each existing source whose target is absent; -> the targets written."""
    written = []
    for source, target in pairs:
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            written.append(target)
    return written


# A study's raw numbers go from its run folders (runs/, never committed) to docs/measurements/
# (committed), where study_tables.py reads them: of a bench folder its report (results.json / .csv /
# .md and figures) and per trial its eval.json, the W selection, the training cost and its
# metrics.jsonl, plus the metric classifier, so that later runs score in the same feature space.
# Samples, checkpoints and models stay behind (megabytes each). Collecting again overwrites: the
# files always say what the runs say now.
REPORT_FILES = ("results.json", "results.csv", "results.md", "per_class_fid.png", "guidance_sweep.png", "classifier.pt")
TRIAL_FILES = {"eval.json": "eval.json", "selection/selection.json": "selection.json",
               "train.done.json": "train.json", "run/metrics.jsonl": "metrics.jsonl"}


def collect_bench(bench: Path, dest: Path) -> None:
    """Copy the report and every finished trial's files."""
    dest.mkdir(parents=True, exist_ok=True)
    pairs = [(bench / name, dest / name) for name in REPORT_FILES]
    for done in sorted(bench.glob("*/seed-*/eval.json")):
        target = dest / done.parent.parent.name / done.parent.name
        pairs += [(done.parent / source, target / name) for source, name in TRIAL_FILES.items()]
    for source, target in pairs:
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def restore_bench(saved: Path, bench: Path) -> None:
    """The reverse of collect_bench, for a fresh checkout: the metric classifier and every collected
    trial's files back into a bench folder, so the bench scores in the same feature space and skips
    the trials already evaluated (a trial with eval.json is done). Files already there are kept."""
    pairs = [(saved / "classifier.pt", bench / "classifier.pt")]
    for done in sorted(saved.glob("*/seed-*/eval.json")):
        trial = bench / done.parent.parent.name / done.parent.name
        pairs += [(done.parent / name, trial / source) for source, name in TRIAL_FILES.items()]
    copy_missing(pairs)


def collect_latents(folder: Path, dest: Path) -> None:
    """A `coral-ft latents` output's text and JSON reports."""
    for name in ("latents.txt", "latents.json"):
        if (folder / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / name, dest / name)
