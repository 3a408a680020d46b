"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from coral_ft.errors import UserError

DEFAULT_SPLITS = 10  # the peers and the original code report the mean over 10 splits


def inception_score(logits: np.ndarray, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """IS of classifier logits (N, K): (mean, std) over `splits` consecutive chunks.

    Uniform predictions give 1; confident predictions spread evenly over K classes give K.
    """
    n = len(logits)
    if splits < 1 or n < splits:
        raise UserError(f"Inception Score with {splits} splits needs at least {splits} images; got {n}")
    log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)  # (N, K) log p(y|x)
    scores = []
    for chunk in np.array_split(log_p, splits):
        log_marginal = np.log(np.exp(chunk).mean(axis=0, keepdims=True))  # (1, K) log p(y)
        kl = (np.exp(chunk) * (chunk - log_marginal)).sum(axis=1)  # (n,) KL per image
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute(inputs) -> dict:
    """The registry's `is` (coral_ft.metrics.registry): from the network's logits, when it has them."""
    from coral_ft.metrics.features.base import logits_source

    logits_fn, reason = logits_source(inputs.network)
    if logits_fn is None:
        return {"available": False, "reason": reason}
    mean, std = inception_score(logits_fn(inputs.images, inputs.features))
    return {"available": True, "mean": mean, "std": std, "splits": DEFAULT_SPLITS}
