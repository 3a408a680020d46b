"""Reference sets for the metrics: real images (named data set split or image folder) or a saved
statistics file made by `make_reference`.

A statistics file (.npz) holds, per feature network, the Gaussian statistics of all reference
images (for FID), optionally the features themselves (for PRD, KID, per-class FID and
precision/recall) and their k-NN radii (precision/recall's reference manifold), plus the network
name, its weights hash and the resize, so that statistics are never compared with features of
another network or another resize. Per-class statistics are computed from the features one class
at a time when needed, so a 1,000-class reference costs one covariance of memory, not 1,000.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coral_ft.errors import UserError
from coral_ft.files import atomic_path
from coral_ft.metrics.fid import gaussian_stats

STATS_FORMAT = "coral-ft-reference-stats/2"  # /2: records the resize; no stored class statistics


@dataclass
class ReferenceImages:
    name: str
    images: np.ndarray  # (M, H, W, C) uint8
    labels: np.ndarray  # (M,) int64
    class_names: list[str]

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


@dataclass
class NetworkStats:
    """One feature network's view of the reference."""

    network: str
    weights_sha1: str
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    resize: str | None = None  # the resize before the network (None: the network has no choice)
    features: np.ndarray | None = None  # (M, D) float32
    radii: dict[int, np.ndarray] = field(default_factory=dict)  # k -> (M,) precision/recall k-NN radii


@dataclass
class ReferenceStats:
    name: str
    count: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    labels: np.ndarray
    class_names: list[str]
    networks: dict[str, NetworkStats]

    def network(self, extractor, purpose: str) -> NetworkStats:
        stats = self.networks.get(extractor.name)
        if stats is None:
            raise UserError(
                f"reference {self.name} has no statistics for {extractor.name} (it has {', '.join(self.networks) or 'none'}); "
                f"rebuild it with `coral-ft eval make-ref` for the metrics including {purpose}"
            )
        if stats.weights_sha1 != extractor.weights_sha1:
            raise UserError(
                f"reference {self.name} was made with {extractor.name} weights sha1 {stats.weights_sha1[:12]}, "
                f"but these weights have sha1 {extractor.weights_sha1[:12]}; rebuild it with `coral-ft eval make-ref`"
            )
        resize = getattr(extractor, "resize", None)
        if stats.resize != resize:
            raise UserError(
                f"reference {self.name} was made with the {stats.resize} resize but this evaluation uses {resize}; "
                f"FIDs of different resizes do not compare: pass --resize {stats.resize} or rebuild the reference"
            )
        return stats


def nchw_to_nhwc(images) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))


def load_reference_images(ref: str, data_root=None, image_size: int | None = None) -> ReferenceImages:
    """`DATASET:SPLIT` (e.g. cifar10:train) or an image folder (root/<class>/<image>).

    image_size reaches the data set's reader (digits resize to it; fixed-size sets ignore it);
    an image folder is read as it is, so a size mismatch is reported rather than hidden.
    """
    from coral_ft.data.registry import DATASETS, load_dataset

    if Path(ref).is_dir():
        data = load_dataset("imagefolder", ref, "train")
    elif ":" in ref:
        dataset, split = ref.split(":", 1)
        resizes = dataset in DATASETS and DATASETS[dataset].resizes  # an unknown name errors in load_dataset
        data = load_dataset(dataset, data_root, split, image_size=image_size if resizes else None)
    else:
        raise UserError(
            f"reference {ref!r} is neither DATASET:SPLIT (e.g. cifar10:train), an image folder nor a stats .npz file"
        )
    return ReferenceImages(ref, nchw_to_nhwc(data.images.numpy()), data.labels.numpy(), list(data.class_names))


def network_stats(extractor, features: np.ndarray, *, keep_features: bool) -> NetworkStats:
    """Statistics of reference features (M, D) as seen by `extractor`."""
    mu, sigma = gaussian_stats(features)
    return NetworkStats(extractor.name, extractor.weights_sha1, mu, sigma, getattr(extractor, "resize", None),
                        features.astype(np.float32) if keep_features else None)


def save_reference_stats(stats: ReferenceStats, path: Path) -> Path:
    """One .npz; arrays per network under `net<i>_...` keys, everything else in a JSON `meta`."""
    arrays: dict[str, np.ndarray] = {"labels": stats.labels}
    nets = []
    for i, net in enumerate(stats.networks.values()):
        arrays[f"net{i}_mu"], arrays[f"net{i}_sigma"] = net.mu, net.sigma
        if net.features is not None:
            arrays[f"net{i}_features"] = net.features
        for k, radii in net.radii.items():
            arrays[f"net{i}_radii_k{k}"] = radii
        nets.append({"network": net.network, "weights_sha1": net.weights_sha1, "resize": net.resize,
                     "radii_k": sorted(net.radii)})
    meta = {"format": STATS_FORMAT, "name": stats.name, "count": stats.count,
            "image_shape": list(stats.image_shape), "class_names": stats.class_names, "networks": nets}
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a half-written file never looks like a reference
        np.savez(tmp, **arrays)
    return path


def load_reference_stats(path) -> ReferenceStats:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reference statistics file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("format") != STATS_FORMAT:
                raise UserError(f"{path} is a reference file of an older coral-ft ({meta.get('format')}); "
                                "rebuild it with `coral-ft eval make-ref`")
            networks = {}
            for i, net in enumerate(meta["networks"]):
                feats = f[f"net{i}_features"] if f"net{i}_features" in f else None
                radii = {k: f[f"net{i}_radii_k{k}"] for k in net["radii_k"]}
                networks[net["network"]] = NetworkStats(
                    net["network"], net["weights_sha1"], f[f"net{i}_mu"], f[f"net{i}_sigma"], net["resize"], feats, radii)
            labels = f["labels"]
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path} is not a reference statistics file made by `coral-ft eval make-ref` ({exc})") from None
    return ReferenceStats(meta["name"], meta["count"], tuple(meta["image_shape"]), labels, meta["class_names"], networks)
