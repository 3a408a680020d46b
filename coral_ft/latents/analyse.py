"""models + data set -> bottleneck features -> scores, maps and a report (what `coral-ft latents` runs).

The images embedded come from a BALANCED split (`test` by default: held-out images, the same
number per class, so per-class scores compare like with like; `train-full` for the balanced
training images), while head and tail are read from the counts of the long-tailed `train`
split the models were trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from coral_ft.data.longtail import select_per_class
from coral_ft.data.registry import load_dataset
from coral_ft.errors import UserError
from coral_ft.latents.extract import (
    FEATURE_KINDS,
    check_compatible,
    default_model_name,
    extract_features,
    load_latent_model,
)
from coral_ft.latents.plots import DISPLAY_NAMES, Panel, check_projection, plot_panels, project_2d
from coral_ft.latents.report import write_report
from coral_ft.latents.scores import entanglement_scores, head_tail_classes

FEATURES_FILE = "features.npz"


def unique_names(names: list[str]) -> list[str]:
    """Suffix repeated names (two runs both called `model`) with their position."""
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def analyse_latents(models: list[Path], out: Path, config, names: list[str] | None = None, device: str = "cpu",
                    log=print, progress: bool = False) -> dict:
    """Run the whole analysis; writes latents.json, latents.txt, features.npz and the PNGs to `out`.

    config: a RunConfig; its [data] section says which data set the models were trained on (head
    and tail come from its long-tailed train split) and [latents] how to embed and score.
    """
    s, d = config.latents, config.data
    if not models:
        raise UserError("give at least one --model (a run directory or a model folder)")
    names = names or unique_names([default_model_name(p) for p in models])
    if len(names) != len(models) or len(set(names)) != len(names):
        raise UserError(f"--name must be given once per --model, all different; got {names}")
    for method in s.plots:
        check_projection(method)
    train = load_dataset(d.dataset, d.root, "train", d.imbalance, d.image_size)
    data = load_dataset(d.dataset, d.root, s.split, d.imbalance, d.image_size)
    counts = train.counts()
    keep = select_per_class(data.labels.numpy(), s.per_class, s.seed)
    images, labels = data.images[keep], data.labels[keep]
    loaded = [load_latent_model(p, n, device) for p, n in zip(models, names)]
    for m in loaded:  # every check before any work
        check_compatible(m, images, data.num_classes, s.timesteps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    head, tail = head_tail_classes(counts, s.head_fraction)
    feats: dict[tuple[str, int, str], np.ndarray] = {}
    with tqdm(total=len(loaded) * len(labels) * len(s.timesteps), desc="latents", unit="img", dynamic_ncols=True,
              disable=not progress) as bar:
        for m in loaded:
            if not progress:
                log(f"embedding {len(labels)} images with {m.name} at t = {', '.join(map(str, s.timesteps))}")
            for t, kinds in extract_features(m, images, labels, s, bar).items():
                for kind, x in kinds.items():
                    feats[(m.name, t, kind)] = x
    y = labels.numpy()
    np.savez_compressed(out / FEATURES_FILE, labels=y, **{f"{n}/t{t}/{k}": x for (n, t, k), x in feats.items()})

    scores = [{"model": name, "timestep": t, "features": kind,
               **entanglement_scores(x, y, counts, s.k, s.head_fraction, s.seed, s.metric).to_dict()}
              for (name, t, kind), x in feats.items()]
    figures = []
    for t in s.timesteps:
        for kind in FEATURE_KINDS:
            present = [m.name for m in loaded if (m.name, t, kind) in feats]
            for method in s.plots if present else []:
                log(f"{method} of {kind} features at t = {t}")
                panels = [Panel(n, project_2d(feats[(n, t, kind)], method, s.seed), y) for n in present]
                images_at = f"{s.split} images{'' if s.noised else ', clean'}"
                title = f"{d.dataset}: {kind} features at t = {t} ({DISPLAY_NAMES[method]}, {images_at}, {s.condition} labels)"
                path = out / f"{kind}-t{t}-{method}.png"
                figures.append(plot_panels(panels, data.class_names, counts, head, tail, title, path).name)
    report = {
        "dataset": d.dataset,
        "split": s.split,
        "imbalance": d.imbalance,
        **{key: getattr(s, key) for key in ("timesteps", "per_class", "condition", "noised", "seed", "k", "metric", "head_fraction")},
        "class_names": data.class_names,
        "train_counts": counts,
        "head_classes": head,
        "tail_classes": tail,
        "models": [{"name": m.name, "path": str(m.path), "has_head": m.has_head} for m in loaded],
        "scores": scores,
        "figures": figures,
    }
    write_report(report, out)
    return report
