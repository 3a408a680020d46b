"""Evaluate the samples benchmarks/gpu_check.py brought back from a GPU: TF-Inception FID with the
paper's resize, overall and per group of classes, against a reference made once here.

    python benchmarks/gpu_check_eval.py --samples DIR --data-root ../shared/data/cifar10   # the CIFAR10-LT run
    python benchmarks/gpu_check_eval.py --samples DIR --dataset digits-lt                  # the CPU smoke's samples

The reference statistics (the balanced training split, `legacy-pytorch` resize) are made on the
first call and cached under runs/refs/ (never committed). Prints one line per method and writes
DIR/eval.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coral_ft.bench.groups import class_groups
from coral_ft.config import EvalConfig
from coral_ft.data.registry import load_dataset
from coral_ft.metrics.evaluation import evaluate, load_samples, make_reference
from coral_ft.metrics.reference import load_reference_images

RESIZE = "legacy-pytorch"  # the paper's, so the FIDs compare with its Table 1 (at equal sample counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True, help="the folder with samples-<method>.npz")
    parser.add_argument("--dataset", default="cifar10-lt")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--refs", type=Path, default=Path("runs/refs"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    settings = EvalConfig(metrics=["fid"], resize=RESIZE)
    paths = sorted(args.samples.glob("samples-*.npz"))
    if not paths:
        raise SystemExit(f"no samples-*.npz in {args.samples} (bring them back from the device run first)")
    size = load_samples(paths[0]).images.shape[1]  # the reference is read at the samples' size
    train = load_dataset(args.dataset, args.data_root, "train")
    ref = args.refs / f"{args.dataset}-train-full-{RESIZE}-{size}.npz"
    if not ref.is_file():
        images = load_reference_images(f"{args.dataset}:train-full", args.data_root, size)
        make_reference(images, ref, settings, device=args.device, progress=True)
    groups = class_groups(train.counts())
    report = {"reference": str(ref), "resize": RESIZE, "groups": groups.classes, "methods": {}}
    for path in paths:
        method = path.stem.removeprefix("samples-")
        result = evaluate(path, str(ref), settings, device=args.device, groups=groups.classes)
        report["methods"][method] = {"fid": result["metrics"]["fid"]["value"], "samples": result["samples"]["count"],
                                     "groups": {g: v["fid"] for g, v in result["groups"].items()}}
        cells = ", ".join(f"{g} {v:.2f}" for g, v in report["methods"][method]["groups"].items() if v is not None)
        print(f"{method:6s} FID {report['methods'][method]['fid']:.2f} ({result['samples']['count']} samples; {cells})")
    (args.samples / "eval.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
