"""`evaluate`: samples + a reference -> FID, IS, PRD, precision/recall, KID, per-class FID, and
the same restricted to groups of classes.

The library entry point behind `coral-ft eval` (and the bench). Feature networks are loaded
from weight files (features/weights.py) unless an extractor object is injected; the metric math
lives in pure functions next to this file. Every result records the network, its weights' hash,
the resize and the counts it was computed from.

`settings` is an `EvalConfig` (coral_ft.config) or any object with its fields: metrics, resize,
recall_network, k, feature_batch_size, weights_dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coral_ft.errors import UserError
from coral_ft.metrics import inception_score as is_math
from coral_ft.metrics import kid as kid_math
from coral_ft.metrics import prd as prd_math
from coral_ft.metrics import precision_recall as pr_math
from coral_ft.metrics.features.base import check_images, logits_source, resize_of
from coral_ft.metrics.fid import MIN_SAMPLES, fid_from_stats, gaussian_stats
from coral_ft.metrics.per_class import per_class_fid
from coral_ft.metrics.reference import (
    NetworkStats,
    ReferenceImages,
    ReferenceStats,
    load_reference_images,
    load_reference_stats,
    network_stats,
    save_reference_stats,
)
from coral_ft.metrics.registry import computations_for

RECALL = "recall"  # improved precision/recall: VGG16 features unless told otherwise
FEATURE_COMPUTATIONS = {"prd", "kid", "recall", "per-class-fid"}  # need the reference's features
GROUP_METRICS = ("fid", "kid", "recall")


@dataclass
class Samples:
    source: str
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray | None  # (N,) int64


def load_samples(samples) -> Samples:
    """A samples .npz (`images` uint8 (N, H, W, C), `labels` (N,)) or a dict with those keys."""
    if isinstance(samples, dict):
        source, data = "<in memory>", samples
    else:
        path = Path(samples)
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


def load_reference(ref, data_root=None, image_size: int | None = None) -> ReferenceImages | ReferenceStats:
    if isinstance(ref, (ReferenceImages, ReferenceStats)):
        return ref
    if str(ref).endswith(".npz"):
        return load_reference_stats(ref)
    return load_reference_images(str(ref), data_root, image_size)


def _shape_of(ref) -> tuple[int, int, int]:
    return tuple(ref.image_shape) if isinstance(ref, ReferenceStats) else tuple(ref.images.shape[1:])


def _check_compatible(samples: Samples, ref, ref_count: int, num_classes: int, computations, k: int) -> None:
    got, want = tuple(samples.images.shape[1:]), _shape_of(ref)
    if got != want:
        raise UserError(
            f"samples are {got[0]}x{got[1]} with {got[2]} channel(s) but the reference is "
            f"{want[0]}x{want[1]} with {want[2]}; compare images of one size and channel count"
        )
    n = len(samples.images)
    needs = {"fid": MIN_SAMPLES, "kid": 2, "is": is_math.DEFAULT_SPLITS, "recall": k + 1,
             "prd": prd_math.CLUSTERS_PER_CLASS * num_classes}
    for name in computations:
        if name in needs and min(n, ref_count if name != "is" else n) < needs[name]:
            raise UserError(f"{name} needs at least {needs[name]} images per set; got {n} samples and {ref_count} reference")
    if "per-class-fid" in computations and samples.labels is None:
        raise UserError("per-class FID needs sample labels; the samples file has no `labels` array")
    if samples.labels is not None and len(samples.labels) and not 0 <= samples.labels.min() <= samples.labels.max() < num_classes:
        raise UserError(f"sample labels must lie in [0, {num_classes}) (the reference's classes)")


def _load_extractors(computations, settings, extractor, recall_extractor, device, progress=False):
    """(main network for FID/IS/PRD/KID/per-class, network for precision/recall); loads only what is needed."""
    from coral_ft.metrics.features import load_inception, load_vgg16

    inception_recall = settings.recall_network == "inception"
    wants_main = any(c != RECALL for c in computations) or (RECALL in computations and inception_recall)
    main = extractor or (
        load_inception(settings.weights_dir, device, settings.feature_batch_size, settings.resize) if wants_main else None)
    recall = None
    if RECALL in computations:
        recall = recall_extractor or extractor or (
            main if inception_recall else load_vgg16(settings.weights_dir, device, settings.feature_batch_size))
    for net in (main, recall):
        if net is not None and hasattr(net, "progress"):
            net.progress = progress
    return main, recall


def _network_record(extractor) -> dict:
    return {"network": extractor.name, "weights_sha1": extractor.weights_sha1, "resize": resize_of(extractor)}


def _reference_view(ref, extractor, computations, purpose) -> NetworkStats:
    """The reference as seen by one network: loaded from a stats file, or computed from images."""
    if isinstance(ref, ReferenceStats):
        stats = ref.network(extractor, purpose)
        if stats.features is None and FEATURE_COMPUTATIONS & set(computations):
            raise UserError(f"reference {ref.name} holds no features (made with --no-features); {purpose} needs them")
        return stats
    feats = extractor.features(ref.images)
    return network_stats(extractor, feats, keep_features=True)


def evaluate(samples, ref, settings, *, extractor=None, recall_extractor=None, device="cpu", data_root=None,
             groups: dict[str, list[int]] | None = None, prd_runs: int = prd_math.NUM_RUNS, seed: int = 0,
             progress: bool = False) -> dict:
    """Compare generated samples with a reference; returns a JSON-ready dict of results.

    samples: a .npz path or {"images": uint8 (N, H, W, C), "labels": (N,)}.
    ref: "DATASET:SPLIT", an image folder, or a stats .npz from `make_reference`.
    settings: an EvalConfig (metrics, resize, recall_network, k, feature_batch_size, weights_dir).
    extractor: an object with `name`, `weights_sha1`, `features(images)` (optionally
    `logits`/`logits_from_features`) used instead of TF-Inception, and for recall too unless
    `recall_extractor` is given.
    groups: group name -> classes; FID, KID and recall are then also given per group
    (`result["groups"]`), each on the samples and reference images of that group's classes.
    prd_runs: clusterings averaged by PRD.
    """
    computations = computations_for(settings.metrics)
    samples = load_samples(samples)
    # A data set whose reader resizes (digits) is read at the samples' size, e.g. 8x8 digits.
    ref = load_reference(ref, data_root, image_size=samples.images.shape[1])
    ref_count = ref.count if isinstance(ref, ReferenceStats) else len(ref.images)
    num_classes = len(ref.class_names)
    k = settings.k
    _check_compatible(samples, ref, ref_count, num_classes, computations, k)
    if groups and samples.labels is None:
        raise UserError("per-group metrics need sample labels; the samples file has no `labels` array")
    group_needs = set(GROUP_METRICS) if groups else set()
    main, recall_net = _load_extractors(
        sorted(set(computations) | ({"fid", "recall"} & group_needs)), settings, extractor, recall_extractor, device, progress)

    n = len(samples.images)
    results: dict[str, dict] = {}
    feats, ref_view = None, None  # (N, D) sample features and the reference view of the main network
    main_computations = [c for c in computations if c != RECALL]
    if main_computations or groups:
        feats = main.features(samples.images)  # (N, D)
        ref_view = _reference_view(ref, main, main_computations + (["kid"] if groups else []),
                                   ", ".join(main_computations) or "per-group metrics")
        record = {**_network_record(main), "samples": n, "reference": ref_count}
        if "fid" in computations:
            results["fid"] = {"value": fid_from_stats(*gaussian_stats(feats), ref_view.mu, ref_view.sigma), **record}
        if "is" in computations:
            results["is"] = _inception_score(main, samples.images, feats, record)
        if "prd" in computations:
            results["prd"] = _prd(feats, ref_view.features, num_classes, record, prd_runs, seed)
        if "kid" in computations:
            value, subset = kid_math.kid(feats, ref_view.features, seed=seed)
            results["kid"] = {"value": value, "subsets": kid_math.NUM_SUBSETS, "subset_size": subset, **record}
        if "per-class-fid" in computations:
            results["per-class-fid"] = _per_class(feats, samples.labels, ref_view, ref.labels, ref.class_names, record)
    recall_feats, recall_view = None, None
    if RECALL in computations or groups:
        if recall_net is main and feats is not None:  # reuse the main network's features of both sets
            recall_feats, recall_view = feats, ref_view
        else:
            recall_feats = recall_net.features(samples.images)
            recall_view = _reference_view(ref, recall_net, [RECALL], RECALL)
        if recall_view.features is None:
            raise UserError(f"reference {ref.name} holds no features (made with --no-features); recall needs them")
    if RECALL in computations:
        pr = pr_math.precision_recall(recall_feats, recall_view.features, k=k, device=device, ref_radii=recall_view.radii.get(k))
        results[RECALL] = {"precision": pr.precision, "recall": pr.recall, "k": pr.k,
                           **_network_record(recall_net), "samples": n, "reference": ref_count}
    out = {
        "samples": {"source": samples.source, "count": n, "image_shape": list(samples.images.shape[1:])},
        "reference": {"source": ref.name, "count": ref_count, "classes": num_classes},
        "metrics": results,
    }
    if groups:
        out["groups"] = {
            name: _group_metrics(classes, samples.labels, ref.labels, feats, ref_view, recall_feats, recall_view, k, device, seed)
            for name, classes in groups.items()
        }
    return out


def _inception_score(extractor, images, feats, record) -> dict:
    logits_fn, reason = logits_source(extractor)
    if logits_fn is None:
        return {"available": False, "reason": reason, **record}
    mean, std = is_math.inception_score(logits_fn(images, feats))
    return {"available": True, "mean": mean, "std": std, "splits": is_math.DEFAULT_SPLITS, **record}


def _prd(feats, ref_feats, num_classes, record, runs, seed) -> dict:
    clusters = prd_math.CLUSTERS_PER_CLASS * num_classes
    res = prd_math.prd(feats, ref_feats, clusters, num_runs=runs, seed=seed)
    return {"f8_recall": res.f8_recall, "f1_8_precision": res.f1_8_precision, "clusters": res.num_clusters,
            "runs": res.num_runs, "angles": prd_math.NUM_ANGLES, "samples_used": res.samples_used,
            "balancing": res.balance_note, **record}


def _per_class(feats, labels, ref_view: NetworkStats, ref_labels, class_names, record) -> dict:
    values = per_class_fid(feats, labels, ref_view.features, ref_labels)
    counts = np.bincount(labels, minlength=len(class_names))
    return {
        "values": {class_names[c]: v for c, v in values.items()},
        "classes": list(values),  # the class index of each value, in order
        "mean": float(np.mean(list(values.values()))),
        "samples_per_class": {class_names[c]: int(counts[c]) for c in values},
        **record,
    }


def _group_metrics(classes, labels, ref_labels, feats, ref_view, recall_feats, recall_view, k, device, seed) -> dict:
    """FID, KID (unbiased at small N) and precision/recall on one group of classes."""
    mine, theirs = np.isin(labels, classes), np.isin(ref_labels, classes)
    out = {"classes": [int(c) for c in classes], "samples": int(mine.sum()), "reference": int(theirs.sum())}
    if min(out["samples"], out["reference"]) <= k:
        return {**out, "fid": None, "kid": None, "precision": None, "recall": None}
    a, b = feats[mine], ref_view.features[theirs]
    out["fid"] = fid_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    out["kid"] = kid_math.kid(a, b, seed=seed)[0]
    pr = pr_math.precision_recall(recall_feats[mine], recall_view.features[theirs], k=k, device=device)
    out["precision"], out["recall"] = pr.precision, pr.recall
    return out


def make_reference(ref, out, settings, *, extractor=None, recall_extractor=None, keep_features: bool = True,
                   device="cpu", data_root=None, image_size: int | None = None, progress: bool = False) -> Path:
    """Compute a reference's features and statistics once; save them as .npz.

    settings: an EvalConfig; its metrics say which networks are needed (recall adds VGG16
    features and their k-NN radii for `settings.k`). image_size: read a resizing data set
    (digits) at the size the samples will have.
    """
    computations = computations_for(settings.metrics)
    if not keep_features and FEATURE_COMPUTATIONS & set(computations):
        raise UserError(f"{', '.join(sorted(FEATURE_COMPUTATIONS & set(computations)))} need the reference features; drop --no-features")
    images = load_reference(ref, data_root, image_size)
    if isinstance(images, ReferenceStats):
        raise UserError(f"{ref} is already a statistics file; make-ref needs DATASET:SPLIT or an image folder")
    main, recall_net = _load_extractors(computations, settings, extractor, recall_extractor, device, progress)
    networks = {}
    nets = [main] if main is not None else []
    if recall_net is not None and recall_net is not main:
        nets.append(recall_net)
    for net in nets:
        feats = net.features(images.images)
        networks[net.name] = network_stats(net, feats, keep_features=keep_features)
        if net is recall_net:
            ref_feats = torch.as_tensor(np.asarray(feats, dtype=np.float32)).to(device)
            networks[net.name].radii[settings.k] = pr_math.knn_radii(ref_feats, settings.k).cpu().numpy()
    stats = ReferenceStats(images.name, len(images.images), tuple(images.images.shape[1:]), images.labels,
                           images.class_names, networks)
    return save_reference_stats(stats, Path(out))
