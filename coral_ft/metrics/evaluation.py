"""`evaluate`: samples + a reference -> the registry's metrics (FID, IS, PRD, precision/recall, KID,
per-class FID), and the per-group ones restricted to groups of classes.

The library entry point behind `coral-ft eval` (and the bench). Order of work: everything that can
be wrong is checked first (sizes, channels, sample counts, labels, the weights files, a statistics
file's network, weights and resize), then each feature network runs once over the samples, then
each computation of `coral_ft.metrics.registry` runs on its network's view. Feature networks are
loaded from weight files (features/weights.py) unless one is injected; the metric math lives in
pure functions next to this file. Every result records the network, its weights' hash, the resize
and the counts it was computed from.

`settings` is an `EvalConfig` (coral_ft.config) or any object with its fields: metrics, resize,
recall_network, k, feature_batch_size, weights_dir, prd_runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coral_ft.errors import UserError
from coral_ft.metrics import precision_recall as pr_math
from coral_ft.metrics.features.base import check_images
from coral_ft.metrics.inputs import MetricInputs
from coral_ft.metrics.reference import (
    NetworkStats,
    ReferenceImages,
    ReferenceStats,
    load_reference_images,
    load_reference_stats,
    nchw_to_nhwc,
    network_stats,
    save_reference_stats,
)
from coral_ft.metrics.registry import COMPUTATIONS, computations_for, metrics_of

SEED = 0  # KID subsets and PRD clusterings: a result is reproducible


@dataclass
class Samples:
    source: str
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray | None  # (N,) int64


def load_samples(samples) -> Samples:
    """A samples .npz (`images` uint8 (N, H, W, C), `labels` (N,)), an image folder
    (`load_sample_folder`), a dict with those keys, or `Samples` already in memory (returned as they are)."""
    if isinstance(samples, Samples):
        return samples
    if isinstance(samples, dict):
        source, data = "<in memory>", samples
    else:
        path = Path(samples)
        if path.is_dir():
            return load_sample_folder(path)
        if not path.is_file():
            raise UserError(f"samples file not found: {path} (make one with `coral-ft sample`)")
        source = str(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files if k in ("images", "labels")}
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read samples file {path}: {exc}") from None
    if "images" not in data:
        raise UserError(f"samples {source} have no `images` array (uint8, N x H x W x C)")
    images = np.asarray(data["images"])
    check_images(images[:0])
    labels = np.asarray(data["labels"]).astype(np.int64) if data.get("labels") is not None else None
    if labels is not None and labels.shape != (len(images),):
        raise UserError(f"samples {source}: {len(images)} images but labels of shape {labels.shape}")
    return Samples(source, images, labels)


CLASS_FOLDER = re.compile(r"^(\d+)-")  # `coral-ft sample --png-dir` names class c's folder f"{c:03d}-{name}"


def load_sample_folder(folder: Path) -> Samples:
    """Samples as images: class sub-folders (labels: the number a folder's name starts with, as
    `coral-ft sample --png-dir` writes them, else the folders' sorted order, as an image folder
    --ref is read), or images alone (no labels). Grey when every image is, else RGB."""
    from coral_ft.data.readers import image_files, read_imagefolder, read_images

    if any(p.is_dir() for p in folder.iterdir()):
        images, labels, names = read_imagefolder(folder, None)
        numbered = [CLASS_FOLDER.match(n) for n in names]
        if all(numbered):
            labels = np.asarray([int(m.group(1)) for m in numbered], dtype=np.int64)[labels]
    else:
        files = image_files(folder)
        if not files:
            raise UserError(f"no images in {folder}: --samples takes a .npz from `coral-ft sample` or a folder of "
                            "images (alone, or in class sub-folders as `coral-ft sample --png-dir` writes them)")
        images, labels = read_images(files, None), None
    return Samples(str(folder), nchw_to_nhwc(images), labels)


def load_reference(ref, data_root=None, image_size: int | None = None) -> ReferenceImages | ReferenceStats:
    if isinstance(ref, (ReferenceImages, ReferenceStats)):
        return ref
    if str(ref).endswith(".npz"):
        return load_reference_stats(ref)
    return load_reference_images(str(ref), data_root, image_size)


def check_compatible(samples: Samples, ref, computations, k: int, grouped: bool = False) -> None:
    """Every mismatch between samples and reference that no feature is needed to see."""
    got, want = tuple(samples.images.shape[1:]), tuple(ref.image_shape)
    if got != want:
        hint = ("; an image folder reads as one channel when every image in it is grey (mode L): save grey "
                "images as such, e.g. PIL's image.convert('L')") if got[:2] == want[:2] and {got[2], want[2]} == {1, 3} else ""
        raise UserError(
            f"samples are {got[0]}x{got[1]} with {got[2]} channel(s) but the reference is "
            f"{want[0]}x{want[1]} with {want[2]}; compare images of one size and channel count{hint}"
        )
    n, ref_count, num_classes = len(samples.images), ref.count, len(ref.class_names)
    for name in computations:
        c = COMPUTATIONS[name]
        needs = c.min_images(k, num_classes)
        if min(n, n if c.samples_only else ref_count) < needs:
            raise UserError(f"{name} needs at least {needs} images per set; got {n} samples and {ref_count} reference")
    if samples.labels is None and ("per-class-fid" in computations or grouped):
        what = "per-class FID needs" if "per-class-fid" in computations else "per-group metrics need"
        raise UserError(f"{what} sample labels; the samples file has no `labels` array")
    if samples.labels is not None and len(samples.labels) and not 0 <= samples.labels.min() <= samples.labels.max() < num_classes:
        raise UserError(f"sample labels must lie in [0, {num_classes}) (the reference's classes)")


def _load_networks(computations, settings, extractor, device, progress=False) -> dict[str, object]:
    """{"main": FID network, "recall": precision/recall network}, loading only what is needed
    (a missing weights file fails here, before any feature is computed)."""
    from coral_ft.metrics.features import load_inception, load_vgg16

    wanted = {COMPUTATIONS[c].network for c in computations}
    if settings.recall_network == "inception" and "recall" in wanted:
        wanted.add("main")
    nets = {}
    if "main" in wanted:
        nets["main"] = extractor or load_inception(settings.weights_dir, device, settings.feature_batch_size, settings.resize)
    if "recall" in wanted:
        nets["recall"] = extractor or (nets["main"] if settings.recall_network == "inception" else
                                       load_vgg16(settings.weights_dir, device, settings.feature_batch_size))
    for net in nets.values():
        if hasattr(net, "progress"):
            net.progress = progress
    return nets


def _network_record(net) -> dict:
    return {"network": net.name, "weights_sha1": net.weights_sha1, "resize": getattr(net, "resize", None)}


def _stats_view(ref: ReferenceStats, net, computations) -> NetworkStats:
    """A statistics file as seen by one network; its network, weights and resize are checked here."""
    purpose = ", ".join(computations)
    stats = ref.network(net, purpose)
    if stats.features is None and any(COMPUTATIONS[c].reference_features for c in computations):
        raise UserError(f"reference {ref.name} holds no features (made with --no-features); {purpose} need them")
    return stats


def evaluate(samples, ref, settings, *, extractor=None, device="cpu", data_root=None,
             groups: dict[str, list[int]] | None = None, progress: bool = False) -> dict:
    """Compare generated samples with a reference; returns a JSON-ready dict of results.

    samples: a .npz path, {"images": uint8 (N, H, W, C), "labels": (N,)} or `Samples` in memory.
    ref: "DATASET:SPLIT", an image folder, or a stats .npz from `make_reference`.
    extractor: an object with `name`, `weights_sha1`, `features(images)` (optionally
    `logits`/`logits_from_features`) used instead of TF-Inception, for recall too.
    groups: group name -> classes; the per-group computations (registry) then also run on the
    samples and reference images of each group's classes (`result["groups"]`).
    """
    computations = computations_for(settings.metrics)
    samples = load_samples(samples)
    # A data set whose reader resizes (digits) is read at the samples' size, e.g. 8x8 digits.
    ref = load_reference(ref, data_root, image_size=samples.images.shape[1])
    # groups add the per-group computations the requested ones' networks can give (a group KID
    # costs no new features; a group recall that nobody asked for would load VGG16)
    networks = {COMPUTATIONS[c].network for c in computations}
    grouped = [c for c in COMPUTATIONS if COMPUTATIONS[c].per_group and COMPUTATIONS[c].network in networks] if groups else []
    needed = [c for c in COMPUTATIONS if c in computations or c in grouped]
    check_compatible(samples, ref, computations, settings.k, grouped=bool(groups))
    nets = _load_networks(needed, settings, extractor, device, progress)
    # The reference as each network sees it: a statistics file's network, weights and resize are
    # checked before any feature is computed.
    views = {role: _stats_view(ref, net, [c for c in needed if COMPUTATIONS[c].network == role])
             for role, net in nets.items() if isinstance(ref, ReferenceStats)}
    inputs: dict[int, MetricInputs] = {}  # one view per distinct network: its features computed once
    for role, net in nets.items():
        if id(net) not in inputs:
            view = views.get(role) or network_stats(net, net.features(ref.images), keep_features=True)
            inputs[id(net)] = MetricInputs(net.features(samples.images), view, samples.labels, ref.labels,
                                           list(ref.class_names), samples.images, net, settings.k, device, SEED,
                                           settings.prd_runs)
    counts = {"samples": len(samples.images), "reference": ref.count}
    results = {}
    for name in computations:
        net = nets[COMPUTATIONS[name].network]
        results[name] = {**COMPUTATIONS[name].run(inputs[id(net)]), **_network_record(net), **counts}
    out = {
        "samples": {"source": samples.source, "count": len(samples.images), "image_shape": list(samples.images.shape[1:])},
        "reference": {"source": ref.name, "count": ref.count, "classes": len(ref.class_names)},
        "metrics": results,
    }
    if groups:
        per_net = {c: inputs[id(nets[COMPUTATIONS[c].network])] for c in grouped}
        out["groups"] = {name: group_metrics(per_net, classes, settings.k) for name, classes in groups.items()}
    return out


def group_metrics(per_computation: dict[str, MetricInputs], classes, k: int) -> dict:
    """The per-group computations on one group of classes, keyed by metric name."""
    first = next(iter(per_computation.values()))
    labels, ref_labels = first.labels, first.reference_labels
    out = {"classes": [int(c) for c in classes], "samples": int(np.isin(labels, classes).sum()),
           "reference": int(np.isin(ref_labels, classes).sum())}
    small = min(out["samples"], out["reference"]) <= k
    for name, inputs in per_computation.items():
        values = {} if small else COMPUTATIONS[name].run(inputs.subset(classes))
        out.update({m.name: values.get(m.field) for m in metrics_of(name)})
    return out


def make_reference(ref, out, settings, *, extractor=None, keep_features: bool = True, device="cpu",
                   progress: bool = False) -> Path:
    """Compute a reference's features and statistics once; save them as .npz.

    ref: `ReferenceImages` (coral_ft.metrics.reference.load_reference_images reads a data set at a
    chosen size and root), "DATASET:SPLIT" or an image folder. settings: an EvalConfig; its
    metrics say which networks are needed (recall adds VGG16 features and their k-NN radii for
    `settings.k`).
    """
    computations = computations_for(settings.metrics)
    needing = [c for c in computations if COMPUTATIONS[c].reference_features]
    if not keep_features and needing:
        raise UserError(f"{', '.join(needing)} need the reference features; drop --no-features")
    images = load_reference(ref)
    if isinstance(images, ReferenceStats):
        raise UserError(f"{ref} is already a statistics file; make-ref needs DATASET:SPLIT or an image folder")
    nets = _load_networks(computations, settings, extractor, device, progress)
    networks = {}
    for role, net in nets.items():
        if net.name in networks:  # one network serving both roles: its features once, its radii added
            stats = networks[net.name]
        else:
            feats = net.features(images.images)
            stats = networks[net.name] = network_stats(net, feats, keep_features=keep_features)
        if role == "recall":
            ref_feats = torch.as_tensor(np.asarray(stats.features, dtype=np.float32)).to(device)
            stats.radii[settings.k] = pr_math.knn_radii(ref_feats, settings.k).cpu().numpy()
    stats = ReferenceStats(images.name, images.count, images.image_shape, images.labels, images.class_names, networks)
    return save_reference_stats(stats, Path(out))
