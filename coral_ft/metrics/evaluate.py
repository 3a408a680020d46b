"""`evaluate`: samples + a reference -> FID, IS, PRD, precision/recall, KID, per-class FID.

The library entry point behind `coral-ft eval` (and the bench). Feature networks are loaded
from weight files (features/weights.py) unless an extractor object is injected; the metric math
lives in pure functions next to this file. Every result records the network, its weights' hash
and the counts it was computed from.
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
from coral_ft.metrics.features.base import check_images, logits_source
from coral_ft.metrics.fid import MIN_SAMPLES, fid_from_stats, gaussian_stats
from coral_ft.metrics.per_class import per_class_fid
from coral_ft.metrics.reference import (
    NetworkStats, ReferenceImages, ReferenceStats, load_reference_images, load_reference_stats, network_stats,
    save_reference_stats,
)

METRICS = ("fid", "is", "prd", "recall", "kid", "per-class-fid")
DEFAULT_METRICS = ("fid", "is")
RECALL_METRIC = "recall"  # improved precision/recall: VGG16 features unless told otherwise
FEATURE_METRICS = {"prd", "kid", "recall"}  # need the reference's features, not only its statistics
RECALL_NETWORKS = ("vgg16", "inception")


@dataclass
class Samples:
    source: str
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray | None  # (N,) int64


def parse_metrics(metrics) -> list[str]:
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [m.strip().lower() for m in names if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(METRICS)}")
    return list(dict.fromkeys(names))


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
                data = {k: f[k] for k in f.files}
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


def _check_compatible(samples: Samples, ref, ref_count: int, num_classes: int, metrics, k: int) -> None:
    got, want = tuple(samples.images.shape[1:]), _shape_of(ref)
    if got != want:
        raise UserError(
            f"samples are {got[0]}x{got[1]} with {got[2]} channel(s) but the reference is "
            f"{want[0]}x{want[1]} with {want[2]}; compare images of one size and channel count"
        )
    n = len(samples.images)
    needs = {"fid": MIN_SAMPLES, "kid": 2, "is": is_math.DEFAULT_SPLITS, "recall": k + 1,
             "prd": prd_math.CLUSTERS_PER_CLASS * num_classes}
    for metric in metrics:
        if metric in needs and min(n, ref_count if metric != "is" else n) < needs[metric]:
            raise UserError(f"{metric} needs at least {needs[metric]} images per set; got {n} samples and {ref_count} reference")
    if "per-class-fid" in metrics:
        if samples.labels is None:
            raise UserError("per-class FID needs sample labels; the samples file has no `labels` array")
    if samples.labels is not None and len(samples.labels) and not 0 <= samples.labels.min() <= samples.labels.max() < num_classes:
        raise UserError(f"sample labels must lie in [0, {num_classes}) (the reference's classes)")


def _load_extractors(metrics, extractor, recall_extractor, recall_network, weights_dir, device, batch_size):
    """(main network for FID/IS/PRD/KID/per-class, network for precision/recall); loads only what is needed."""
    from coral_ft.metrics.features import load_inception, load_vgg16

    if recall_network not in RECALL_NETWORKS:
        raise UserError(f"recall network must be one of {', '.join(RECALL_NETWORKS)}; got {recall_network!r}")
    wants_main = any(m != RECALL_METRIC for m in metrics) or (RECALL_METRIC in metrics and recall_network == "inception")
    main = extractor or (load_inception(weights_dir, device, batch_size) if wants_main else None)
    recall = None
    if RECALL_METRIC in metrics:
        recall = recall_extractor or extractor or (
            main if recall_network == "inception" else load_vgg16(weights_dir, device, batch_size))
    return main, recall


def _network_record(extractor) -> dict:
    return {"network": extractor.name, "weights_sha1": extractor.weights_sha1}


def _reference_view(ref, extractor, metrics, purpose, per_class: bool) -> NetworkStats:
    """The reference as seen by one network: loaded from a stats file, or computed from images."""
    if isinstance(ref, ReferenceStats):
        stats = ref.network(extractor, purpose)
        if stats.features is None and FEATURE_METRICS & set(metrics):
            raise UserError(f"reference {ref.name} holds no features (made with --no-features); {purpose} needs them")
        if per_class and not stats.class_stats:
            raise UserError(f"reference {ref.name} holds no per-class statistics; rebuild it with per-class-fid among the metrics")
        return stats
    feats = extractor.features(ref.images)
    return network_stats(extractor, feats, ref.labels, per_class=per_class, keep_features=True)


def evaluate(samples, ref, metrics=DEFAULT_METRICS, *, extractor=None, recall_extractor=None,
             recall_network: str = "vgg16", weights_dir=None, batch_size: int = 64, device="cpu",
             data_root=None, k: int = pr_math.DEFAULT_K, prd_runs: int = prd_math.NUM_RUNS, seed: int = 0) -> dict:
    """Compare generated samples with a reference; returns a JSON-ready dict of results.

    samples: a .npz path or {"images": uint8 (N, H, W, C), "labels": (N,)}.
    ref: "DATASET:SPLIT", an image folder, or a stats .npz from `make_reference`.
    extractor: an object with `name`, `weights_sha1`, `features(images)` (optionally
    `logits`/`logits_from_features`) used instead of TF-Inception, and for recall too unless
    `recall_extractor` is given. recall_network: "vgg16" (the original metric) or "inception".
    k: neighbours of the precision/recall manifolds; prd_runs: clusterings averaged by PRD.
    """
    metrics = parse_metrics(metrics)
    samples = load_samples(samples)
    # A data set whose reader resizes (digits) is read at the samples' size, e.g. 8x8 digits.
    ref = load_reference(ref, data_root, image_size=samples.images.shape[1])
    ref_count = ref.count if isinstance(ref, ReferenceStats) else len(ref.images)
    num_classes = len(ref.class_names)
    _check_compatible(samples, ref, ref_count, num_classes, metrics, k)
    main, recall_net = _load_extractors(metrics, extractor, recall_extractor, recall_network, weights_dir, device, batch_size)

    n = len(samples.images)
    results: dict[str, dict] = {}
    feats, ref_view = None, None  # (N, D) sample features and the reference view of the main network
    main_metrics = [m for m in metrics if m != RECALL_METRIC]
    if main_metrics:
        feats = main.features(samples.images)  # (N, D)
        ref_view = _reference_view(ref, main, main_metrics, ", ".join(main_metrics), "per-class-fid" in metrics)
        record = {**_network_record(main), "samples": n, "reference": ref_count}
        if "fid" in metrics:
            results["fid"] = {"value": fid_from_stats(*gaussian_stats(feats), ref_view.mu, ref_view.sigma), **record}
        if "is" in metrics:
            results["is"] = _inception_score(main, samples.images, feats, record)
        if "prd" in metrics:
            results["prd"] = _prd(feats, ref_view.features, num_classes, record, prd_runs, seed)
        if "kid" in metrics:
            value, subset = kid_math.kid(feats, ref_view.features, seed=seed)
            results["kid"] = {"value": value, "subsets": kid_math.NUM_SUBSETS, "subset_size": subset, **record}
        if "per-class-fid" in metrics:
            results["per-class-fid"] = _per_class(feats, samples.labels, ref_view, ref.class_names, record)
    if RECALL_METRIC in metrics:
        if recall_net is not main or feats is None:  # else reuse the main network's features of both sets
            feats = recall_net.features(samples.images)
            ref_view = _reference_view(ref, recall_net, [RECALL_METRIC], RECALL_METRIC, False)
        elif ref_view.features is None:
            raise UserError(f"reference {ref.name} holds no features (made with --no-features); recall needs them")
        pr = pr_math.precision_recall(feats, ref_view.features, k=k, device=device, ref_radii=ref_view.radii.get(k))
        results[RECALL_METRIC] = {"precision": pr.precision, "recall": pr.recall, "k": pr.k,
                                  **_network_record(recall_net), "samples": n, "reference": ref_count}
    return {
        "samples": {"source": samples.source, "count": n, "image_shape": list(samples.images.shape[1:])},
        "reference": {"source": ref.name, "count": ref_count, "classes": num_classes},
        "metrics": results,
    }


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


def _per_class(feats, labels, ref_view: NetworkStats, class_names, record) -> dict:
    values = per_class_fid(feats, labels, ref_view.class_stats)
    counts = np.bincount(labels, minlength=len(class_names))
    return {
        "values": {class_names[c]: v for c, v in values.items()},
        "mean": float(np.mean(list(values.values()))),
        "samples_per_class": {class_names[c]: int(counts[c]) for c in values},
        **record,
    }


def make_reference(ref, out, metrics=("fid", "per-class-fid", "prd", "kid"), *, extractor=None,
                   recall_extractor=None, recall_network: str = "vgg16", keep_features: bool = True,
                   weights_dir=None, batch_size: int = 64, device="cpu", data_root=None,
                   image_size: int | None = None, k: int = pr_math.DEFAULT_K) -> Path:
    """Compute a reference's features and statistics (overall and per class) once; save them as .npz.
    image_size: read a resizing data set (digits) at the size the samples will have. With recall
    among the metrics the recall network's k-NN radii for `k` are kept too."""
    metrics = parse_metrics(metrics)
    if not keep_features and FEATURE_METRICS & set(metrics):
        raise UserError(f"{', '.join(sorted(FEATURE_METRICS & set(metrics)))} need the reference features; drop --no-features")
    images = load_reference(ref, data_root, image_size)
    if isinstance(images, ReferenceStats):
        raise UserError(f"{ref} is already a statistics file; make-ref needs DATASET:SPLIT or an image folder")
    main, recall_net = _load_extractors(metrics, extractor, recall_extractor, recall_network, weights_dir, device, batch_size)
    networks = {}
    nets = [main] if main is not None else []
    if recall_net is not None and recall_net is not main:
        nets.append(recall_net)
    for net in nets:
        feats = net.features(images.images)
        networks[net.name] = network_stats(net, feats, images.labels, per_class="per-class-fid" in metrics,
                                           keep_features=keep_features)
        if net is recall_net:
            ref = torch.as_tensor(np.asarray(feats, dtype=np.float32)).to(device)
            networks[net.name].radii[k] = pr_math.knn_radii(ref, k).cpu().numpy()
    stats = ReferenceStats(images.name, len(images.images), tuple(images.images.shape[1:]), images.labels,
                           images.class_names, networks)
    return save_reference_stats(stats, Path(out))
