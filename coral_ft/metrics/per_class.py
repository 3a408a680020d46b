"""Per-class FID (paper Figure 3): each class's samples against that class's real images.

Computed one class at a time from the two feature sets, so memory holds one pair of (D, D)
covariances whatever the number of classes (ImageNet-LT: 1,000 classes of 2048-d features).
Few samples bias FID upward: compare per-class values at equal sample counts, or use KID.
"""

from __future__ import annotations

import numpy as np

from coral_ft.errors import UserError
from coral_ft.metrics.fid import MIN_SAMPLES, fid


def per_class_fid(sample_feats: np.ndarray, sample_labels: np.ndarray, ref_feats: np.ndarray,
                  ref_labels: np.ndarray) -> dict[int, float]:
    """FID per reference class with at least MIN_SAMPLES images; every such class needs as many samples."""
    ref_labels = np.asarray(ref_labels)
    classes = [int(c) for c in np.unique(ref_labels) if (ref_labels == c).sum() >= MIN_SAMPLES]
    counts = np.bincount(sample_labels, minlength=max(classes, default=0) + 1)
    short = [c for c in classes if counts[c] < MIN_SAMPLES]
    if short:
        raise UserError(
            f"per-class FID needs at least {MIN_SAMPLES} samples of every class; classes {short[:10]} have fewer "
            "(sample with equal counts per class)"
        )
    stray = sorted(set(np.unique(sample_labels).tolist()) - set(classes))
    if stray:
        raise UserError(f"samples carry labels {stray[:10]} that the reference does not have")
    return {c: fid(sample_feats[sample_labels == c], ref_feats[ref_labels == c]) for c in classes}


def compute(inputs) -> dict:
    """The registry's `per-class-fid` (coral_ft.metrics.registry), keyed by class name; `evaluate`
    has checked that the samples have labels."""
    values = per_class_fid(inputs.features, inputs.labels, inputs.reference.features, inputs.reference_labels)
    counts = np.bincount(inputs.labels, minlength=inputs.num_classes)
    names = inputs.class_names
    return {"values": {names[c]: v for c, v in values.items()}, "classes": list(values),  # class index of each value
            "mean": float(np.mean(list(values.values()))), "samples_per_class": {names[c]: int(counts[c]) for c in values}}
