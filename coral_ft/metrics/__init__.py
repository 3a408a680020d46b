"""Evaluation metrics: pure functions on feature arrays, the feature networks in `features/`,
the table of reported metrics in `registry`, and `evaluate` / `make_reference` tying them to
samples files and reference sets."""

from coral_ft.metrics.evaluate import evaluate, make_reference
from coral_ft.metrics.fid import fid, fid_from_stats, gaussian_stats
from coral_ft.metrics.inception_score import inception_score
from coral_ft.metrics.kid import kid
from coral_ft.metrics.per_class import per_class_fid
from coral_ft.metrics.prd import prd
from coral_ft.metrics.precision_recall import precision_recall
from coral_ft.metrics.registry import METRICS

__all__ = [
    "METRICS", "evaluate", "make_reference", "fid", "fid_from_stats", "gaussian_stats", "inception_score", "kid",
    "per_class_fid", "prd", "precision_recall",
]
