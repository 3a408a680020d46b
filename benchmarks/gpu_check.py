"""The GPU path in one prepared command: the CUDA-graph step's numerics, the speed tables, and a
CIFAR10-LT DDPM/CORAL run whose samples come back for TF-Inception evaluation elsewhere.

    # on one GPU (about 8 minutes); DIR holds CIFAR-10 in its pickle layout
    python benchmarks/gpu_check.py --data-root DIR --out "$OUT" --minutes 8
    # on a CPU, at smoke scale (the test suite runs this, so the command cannot rot)
    python benchmarks/gpu_check.py --device cpu --smoke --out /tmp/gpu-check

1. Numerics. The GPU recipes' training step (bf16 autocast, channels-last, torch.compile) in
   its default mode against the same step replayed as CUDA graphs (`train.compile_mode =
   "reduce-overhead"`, the recipes' default), on the same weights and the same batch: the loss and
   every parameter's gradient, relative differences against `BF16_TOLERANCE`; fp32 eager is the
   anchor both are also compared with (bf16 itself moves a step by about 1e-2). On a CPU the two
   sides are fp32 eager and fp32 channels-last (the comparison's plumbing, not its numbers).
2. Sampling numerics. The guided sampler on the same seeds and labels through the model compiled
   in its default mode and replayed as CUDA graphs (`sample.compile_mode = "reduce-overhead"`):
   the largest and mean pixel differences of the uint8 images, beside those of bf16 against fp32.
3. Speed. benchmarks/speed.py's training ms/step and guided-sampling images/s of `ddpm-cifar`
   for the variants the recipes use, and the hours they project.
4. The bench. `coral-ft bench cifar10-lt` (coral_ft.api.bench) at the `small` scale (EMA
   warm-up, 20-step DPM-Solver++), DDPM and CORAL, one seed each, as many training steps as the
   time left allows (from part 3's step time), then 5,000 reported samples each at the recipe's
   W, copied to OUT/samples-<method>.npz (uint8, 15 MB: under the 16 MiB a file may have to come
   back). The bench scores them with its small classifier only (`bench.metric_network =
   "classifier"`, as docs/measurements/h100/c10-small ran): the device has no TF-Inception
   weights; evaluate the returned files with benchmarks/gpu_check_eval.py (docs/speed.md).

OUT/gpu_check.json holds every figure; the lines printed say the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from common import SHAPES, make_trainer, random_data, time_sampling, training_times

BF16_TOLERANCE = 2e-2  # relative difference of a bf16 loss or gradient: 2^-8 per rounding, summed over a step
GPU_VARIANTS = ("fp32", "bf16+cl+compile", "bf16+cl+cudagraphs")
NUMERICS = {  # side -> config overrides; "anchor" is what both are also compared with
    "gpu": {"anchor": [], "default": ["train.mixed_precision=\"bf16\"", "train.channels_last=true", "train.compile=true"],
            "graphs": ["train.mixed_precision=\"bf16\"", "train.channels_last=true", "train.compile=true",
                       'train.compile_mode="reduce-overhead"']},
    "cpu": {"anchor": [], "default": [], "graphs": ["train.channels_last=true"]},
}
REPORTED_SAMPLES = 5000
SCORING_SECONDS = 60  # the bench's classifier (30 epochs on the CPU), reference and evaluation
GRAPH_WARMUP = 3  # CUDA-graph trees record after a few calls; the measured step is a replay


def step_of(trainer) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of step 0's batch after `GRAPH_WARMUP` identical steps (no weight update)."""
    trainer.optimizer.step = lambda: None
    trainer.optimizer.zero_grad = lambda set_to_none=True: None  # the gradients stay to be read
    for _ in range(GRAPH_WARMUP + 1):
        for p in trainer.module.parameters():
            p.grad = None
        trainer.step = 0
        loss = float(trainer.train_step()["loss"])
    return loss, {n: p.grad.detach().float().clone() for n, p in trainer.module.named_parameters() if p.grad is not None}


def compare(a: tuple[float, dict], b: tuple[float, dict]) -> dict:
    (loss_a, ga), (loss_b, gb) = a, b
    # each parameter against its own gradient, or a thousandth of the largest where its own is ~0
    # (attention key biases: their true gradient is zero, softmax ignores a shift shared by a row)
    floor = 1e-3 * max(g.norm().item() for g in ga.values())
    rel = {n: ((ga[n] - gb[n]).norm() / ga[n].norm().clamp(min=floor)).item() for n in ga}
    flat_a, flat_b = torch.cat([g.flatten() for g in ga.values()]), torch.cat([gb[n].flatten() for n in ga])
    return {"loss_rel": abs(loss_a - loss_b) / max(abs(loss_a), 1e-12), "grad_rel_max": max(rel.values()),
            "grad_rel_median": sorted(rel.values())[len(rel) // 2],
            "grad_rel_global": ((flat_a - flat_b).norm() / flat_a.norm()).item(),
            "grad_cosine": torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0).item()}


def numerics(kind: str, preset: str, batch: int, workdir: str) -> dict:
    from accelerate.state import AcceleratorState

    data = random_data(preset)
    steps = {}
    for side, sets in NUMERICS[kind].items():
        AcceleratorState._reset_state(True)
        torch.manual_seed(0)
        steps[side] = step_of(make_trainer("coral", preset, batch, data, f"{workdir}/{side}", sets))
    out = {"graphs_vs_default": compare(steps["default"], steps["graphs"]),
           "default_vs_fp32": compare(steps["anchor"], steps["default"]),
           "graphs_vs_fp32": compare(steps["anchor"], steps["graphs"]), "tolerance": BF16_TOLERANCE}
    g = out["graphs_vs_default"]
    out["within_tolerance"] = g["loss_rel"] <= BF16_TOLERANCE and g["grad_rel_global"] <= BF16_TOLERANCE
    return out


SAMPLE_SIDES = {  # side -> (precision, channels_last, compile, compile mode)
    "gpu": {"fp32": ("no", True, False, "default"), "default": ("bf16", True, True, "default"),
            "graphs": ("bf16", True, True, "reduce-overhead")},
    "cpu": {"fp32": ("no", False, False, "default"), "default": ("no", False, False, "default"),
            "graphs": ("no", True, False, "default")},
}


def sampling_numerics(kind: str, preset: str, device: str, count: int, steps: int) -> dict:
    """The same seeds and labels sampled by each side of SAMPLE_SIDES[kind]: uint8 differences."""
    from coral_ft.config import SampleConfig
    from coral_ft.data.batches import to_uint8
    from coral_ft.models.presets import build_unet
    from coral_ft.models.schedule import make_scheduler
    from coral_ft.sample.labels import sample_seeds
    from coral_ft.sample.samplers import sample

    channels, size = SHAPES[preset]
    torch.manual_seed(0)
    unet = build_unet(preset, size, channels, 10).to(device).eval()
    labels, seeds = torch.arange(count) % 10, sample_seeds(0, range(count))
    images = {}
    for side, (precision, channels_last, compiled, mode) in SAMPLE_SIDES[kind].items():
        net = unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        net = torch.compile(net, mode=mode) if compiled else net
        settings = SampleConfig(guidance=1.0, sampler="ddpm", steps=steps, precision=precision)
        images[side] = to_uint8(sample(net, make_scheduler(), labels, seeds, settings)).int().cpu()

    def diff(a, b):
        d = (images[a] - images[b]).abs().float()
        return {"max": int(d.max()), "mean": float(d.mean()), "over_8_levels": float((d > 8).float().mean())}

    return {"images": count, "steps": steps, "graphs_vs_default": diff("default", "graphs"),
            "default_vs_fp32": diff("fp32", "default")}


def bench_samples(args, out: Path, step_seconds: float | None, seconds_left: float) -> dict:
    """DDPM and CORAL through the bench itself (coral_ft.api.bench), trained for the time left; their
    reported samples copied to `out`. The bench scores them with its small classifier: the device
    has no TF-Inception weights (gpu_check_eval.py gives those FIDs elsewhere)."""
    from accelerate.state import AcceleratorState

    from coral_ft.api import bench
    from coral_ft.config import load_config

    if args.smoke:
        name, overrides = "digits-lt", {"bench.scale": "smoke"}
    else:
        per_method = (seconds_left - SCORING_SECONDS) / 2 - args.overhead_seconds  # compile, sampling, writing
        steps = max(200, int(per_method / (step_seconds * 1.15)))  # logging, EMA, checkpoints: about 15%
        # the carried training split is blank outside the long-tailed subset (cifar_carry.py): the
        # classifier and the reference take the 5,000 carried test images instead
        name, overrides = "cifar10-lt", {"bench.scale": "small", "train.max_steps": steps * 10,  # small: a tenth
                                         "train.warmup_steps": 200, "bench.num_samples": REPORTED_SAMPLES,
                                         "sample.compile": False, "data.root": args.data_root,
                                         "bench.reference_split": "test"}
    overrides.update({"bench.run": ["ddpm", "coral"], "bench.seeds": 1, "bench.guidance_sweep": [],
                      "bench.metric_network": "classifier", "runtime.device": args.device})
    AcceleratorState._reset_state(True)  # the parts before trained in other precisions in this process
    start = time.perf_counter()
    bench(name, load_config(name, overrides), out / "bench", progress=False)
    results = json.loads((out / "bench" / "results.json").read_text())
    result = {"data_set": name, "seconds": time.perf_counter() - start, "samples": results["num_samples"]}
    for arm, r in results["methods"].items():
        shutil.copyfile(out / "bench" / arm / "seed-0" / "samples.npz", out / f"samples-{arm}.npz")
        trained = json.loads((out / "bench" / arm / "seed-0" / "train.done.json").read_text())
        result["steps"] = trained["steps"]
        result[arm] = {"step_seconds": trained["cost"]["step_seconds"], "guidance": r["measured"]["W"]["mean"],
                       "classifier_fid": r["measured"]["fid"]["mean"], "file": f"samples-{arm}.npz"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", default=None, help="CIFAR-10 in its pickle layout (not needed with --smoke)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny models and digits: a CPU check of the plumbing")
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole command's budget")
    parser.add_argument("--overhead-seconds", type=float, default=100.0, help="per bench method: compile, sampling, I/O")
    args = parser.parse_args()
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = args.device.startswith("cuda")
    if not gpu and not args.smoke:
        raise SystemExit("without a GPU, run with --smoke (a CPU check of the plumbing)")
    if not args.smoke and not args.data_root:
        raise SystemExit("--data-root: the folder holding cifar-10-batches-py/")
    preset, batch = ("ddpm-cifar", 128) if not args.smoke else ("tiny", 16)
    report: dict = {"device": torch.cuda.get_device_name() if gpu else "CPU", "torch": torch.__version__, "smoke": args.smoke}
    with tempfile.TemporaryDirectory() as workdir:
        report["numerics"] = numerics("gpu" if gpu else "cpu", preset, batch, workdir)
        n = report["numerics"]["graphs_vs_default"]
        print(f"numerics, CUDA graphs vs default mode: loss {n['loss_rel']:.2e}, gradients {n['grad_rel_global']:.2e} "
              f"(global), {n['grad_rel_max']:.2e} (worst parameter), cosine {n['grad_cosine']:.6f}; tolerance "
              f"{BF16_TOLERANCE:g}: {'within' if report['numerics']['within_tolerance'] else 'OUTSIDE'}", flush=True)
        report["sampling_numerics"] = sampling_numerics("gpu" if gpu else "cpu", preset, args.device,
                                                        256 if gpu else 8, 100 if gpu else 4)
        sn = report["sampling_numerics"]
        print(f"sampling numerics, {sn['images']} images, {sn['steps']} DDPM steps, uint8 levels: CUDA graphs vs "
              f"default max {sn['graphs_vs_default']['max']} mean {sn['graphs_vs_default']['mean']:.3f}; bf16 vs fp32 "
              f"max {sn['default_vs_fp32']['max']} mean {sn['default_vs_fp32']['mean']:.3f}", flush=True)
        speed = argparse.Namespace(preset=preset, batch_size=batch, steps=20 if gpu else 2, warmup=3 if gpu else 1,
                                   sample_batch=2048 if gpu else 8, timed_sample_steps=10 if gpu else 2,
                                   sample_rounds=3 if gpu else 1)
        variants = list(GPU_VARIANTS) if gpu else ["fp32"]
        train_ms = training_times(["ddpm", "coral"], variants, speed, random_data(preset), workdir)
        report["train_seconds_per_step"] = train_ms
        for key, s in train_ms.items():
            print(f"train {key:28s} {s * 1000:8.1f} ms/step, 150k steps in {s * 150_000 / 3600:5.2f} h", flush=True)
    report["sample"] = {}
    for variant in (["bf16+cl+compile", "bf16+cl+cudagraphs"] if gpu else ["fp32"]):
        per_step = time_sampling(variant, ["ddpm"], speed, torch.device(args.device))["ddpm"]
        images_per_s = speed.sample_batch / (per_step * 1000)
        report["sample"][variant] = {"seconds_per_step": per_step, "images_per_s_1000_steps": images_per_s,
                                     "hours_50k_1000_steps": 50_000 / images_per_s / 3600}
        print(f"sample {variant:20s} {per_step * 1000:7.1f} ms/step at batch {speed.sample_batch}: {images_per_s:6.1f} "
              f"images/s, 50k at 1,000 steps in {50_000 / images_per_s / 3600:5.2f} h", flush=True)
    step_seconds = train_ms.get("coral/bf16+cl+cudagraphs") or train_ms.get("coral/fp32")
    left = args.minutes * 60 - (time.perf_counter() - start) - 30
    report["bench"] = bench_samples(args, args.out, step_seconds, left)
    b = report["bench"]
    print(f"bench {b['data_set']}: {b['steps']} steps per method, {b['samples']} samples each -> "
          f"{', '.join(b[m]['file'] for m in ('ddpm', 'coral'))}", flush=True)
    report["seconds"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"done in {report['seconds'] / 60:.1f} min; figures in {args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
