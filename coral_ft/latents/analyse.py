"""models + data set -> bottleneck features -> scores, maps and a report (what `coral-ft latents` runs).

The images embedded come from a BALANCED split (`test` by default: held-out images, the same
number per class, so per-class scores compare like with like; `train-full` for the balanced
training images), while head and tail are read from the counts of the long-tailed `train`
split the models were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from coral_ft.data.longtail import select_per_class
from coral_ft.data.registry import load_dataset
from coral_ft.errors import UserError
from coral_ft.latents.extract import (
    CONDITIONS,
    FEATURE_KINDS,
    check_compatible,
    default_model_name,
    extract_features,
    load_latent_model,
)
from coral_ft.latents.plots import DISPLAY_NAMES, Panel, check_projection, plot_panels, project_2d
from coral_ft.latents.report import write_report
from coral_ft.latents.scores import entanglement_scores, head_tail_classes

EMBED_SPLITS = ("test", "train-full")
FEATURES_FILE = "features.npz"


@dataclass
class LatentsSettings:
    """Everything `analyse_latents` needs; validated on construction."""

    models: list[Path]
    dataset: str
    out: Path
    data_root: str | None = None
    imbalance: float = 0.01
    image_size: int | None = None  # for data sets that resize (digits): the size the models were trained at
    split: str = "test"
    timesteps: list[int] = field(default_factory=lambda: [100, 500])
    per_class: int = 100
    condition: str = "true"
    plots: list[str] = field(default_factory=lambda: ["tsne"])
    k: int = 10
    head_fraction: float = 1 / 3
    metric: str = "euclidean"
    seed: int = 0
    batch_size: int = 256
    device: str = "cpu"
    names: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise UserError("give at least one --model (a run directory or a model folder)")
        if self.split not in EMBED_SPLITS:
            raise UserError(f"--split must be one of {', '.join(EMBED_SPLITS)} (a balanced split); got {self.split!r}")
        if not self.timesteps:
            raise UserError("--timesteps needs at least one timestep, e.g. 100,500")
        if self.per_class < 2:
            raise UserError(f"--per-class must be at least 2 (neighbours and a held-out probe split); got {self.per_class}")
        if self.condition not in CONDITIONS:
            raise UserError(f"--condition must be one of {', '.join(CONDITIONS)}; got {self.condition!r}")
        if self.k < 1:
            raise UserError(f"--k must be at least 1; got {self.k}")
        if not 0 < self.head_fraction <= 0.5:
            raise UserError(f"--head-fraction must be in (0, 0.5]; got {self.head_fraction}")
        if self.metric not in ("euclidean", "cosine"):
            raise UserError(f"--metric must be euclidean or cosine; got {self.metric!r}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1; got {self.batch_size}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise UserError(f"--device must be cpu or cuda[:N]; got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
        for method in self.plots:
            check_projection(method)
        names = self.names or unique_names([default_model_name(p) for p in self.models])
        if len(names) != len(self.models) or len(set(names)) != len(names):
            raise UserError(f"--name must be given once per --model, all different; got {names}")
        self.names = names


def unique_names(names: list[str]) -> list[str]:
    """Suffix repeated names (two runs both called `model`) with their position."""
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def analyse_latents(s: LatentsSettings, log=print) -> dict:
    """Run the whole analysis; writes latents.json, latents.txt, features.npz and the PNGs to s.out."""
    train = load_dataset(s.dataset, s.data_root, "train", s.imbalance, s.image_size)
    data = load_dataset(s.dataset, s.data_root, s.split, s.imbalance, s.image_size)
    counts = train.counts()
    keep = select_per_class(data.labels.numpy(), s.per_class, s.seed)
    images, labels = data.images[keep], data.labels[keep]
    models = [load_latent_model(p, n, s.device) for p, n in zip(s.models, s.names)]
    for m in models:  # every check before any work
        check_compatible(m, images, data.num_classes, s.timesteps)
    s.out.mkdir(parents=True, exist_ok=True)

    head, tail = head_tail_classes(counts, s.head_fraction)
    feats: dict[tuple[str, int, str], np.ndarray] = {}
    for m in models:
        log(f"embedding {len(labels)} images with {m.name} at t = {', '.join(map(str, s.timesteps))}")
        for t, kinds in extract_features(m, images, labels, s.timesteps, s.seed, s.batch_size, s.condition).items():
            for kind, x in kinds.items():
                feats[(m.name, t, kind)] = x
    y = labels.numpy()
    np.savez_compressed(s.out / FEATURES_FILE, labels=y, **{f"{n}/t{t}/{k}": x for (n, t, k), x in feats.items()})

    scores = []
    for (name, t, kind), x in feats.items():
        sc = entanglement_scores(x, y, counts, s.k, s.head_fraction, s.seed, s.metric)
        scores.append({"model": name, "timestep": t, "features": kind, **sc.to_dict()})
    figures = []
    for t in s.timesteps:
        for kind in FEATURE_KINDS:
            present = [m.name for m in models if (m.name, t, kind) in feats]
            for method in s.plots if present else []:
                log(f"{method} of {kind} features at t = {t}")
                panels = [Panel(n, project_2d(feats[(n, t, kind)], method, s.seed), y) for n in present]
                title = f"{s.dataset}: {kind} features at t = {t} ({DISPLAY_NAMES[method]}, {s.split} images, {s.condition} labels)"
                path = s.out / f"{kind}-t{t}-{method}.png"
                figures.append(plot_panels(panels, data.class_names, counts, head, tail, title, path).name)
    report = {
        "dataset": s.dataset,
        "split": s.split,
        "imbalance": s.imbalance,
        "timesteps": s.timesteps,
        "per_class": s.per_class,
        "condition": s.condition,
        "seed": s.seed,
        "k": s.k,
        "metric": s.metric,
        "head_fraction": s.head_fraction,
        "class_names": data.class_names,
        "train_counts": counts,
        "head_classes": head,
        "tail_classes": tail,
        "models": [{"name": m.name, "path": str(m.path), "has_head": m.has_head} for m in models],
        "scores": scores,
        "figures": figures,
    }
    write_report(report, s.out)
    return report


def run_defaults(path: str | Path) -> tuple[str | None, float | None, int | None]:
    """(data set, imbalance, image size) the model was trained on, from its run's config.toml or
    coral_ft.json (an exported folder records the data set only)."""
    from coral_ft.checkpoint.model import load_info, resolve_model_dir
    from coral_ft.config import read_recipe
    from coral_ft.train.trainer import CONFIG_FILE

    model_dir = resolve_model_dir(path)
    dataset, imbalance, image_size = load_info(model_dir).dataset, None, None
    config = model_dir.parent / CONFIG_FILE
    if config.is_file():
        data = read_recipe(config).get("data", {})
        dataset, imbalance, image_size = data.get("dataset", dataset), data.get("imbalance"), data.get("image_size")
    return dataset, imbalance, image_size


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
