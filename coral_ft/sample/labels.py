"""Which class each sample gets, and the seed each sample draws its noise from.

Both are functions of (run seed S, sample index i) only, so shards, batch sizes, process counts
and even the total N (a longer run extends a shorter one) never change sample i.

Label specs:
- `uniform`: drawn uniformly at random over the classes (the paper's evaluation samples).
- `balanced`: class i mod C for sample i, so every class gets N/C (the first N mod C classes one
  more) and every prefix of the run is as balanced as it can be.
- a class list, e.g. `0,3,7` or `cat,dog`: the same cycling, over the listed classes only.
"""

from __future__ import annotations

import numpy as np
import torch

from coral_ft.errors import UserError
from coral_ft.sample.pipeline import sample_seeds  # noqa: F401  (the one definition: the pipeline file is self-contained)

# The SeedSequence word of the label stream (the noise stream's is coral_ft.sample.pipeline.NOISE_STREAM).
_LABEL_STREAM = 1
_LABEL_BLOCK = 4096  # uniform labels are drawn in blocks of this many, one generator per block


def parse_label_spec(spec: str, class_names: list[str]) -> list[int] | None:
    """'uniform' -> None; 'balanced' -> all classes; 'a,b,...' -> those classes (indices or names)."""
    num_classes = len(class_names)
    spec = spec.strip()
    if spec == "uniform":
        return None
    if spec == "balanced":
        return list(range(num_classes))
    items = [s.strip() for s in spec.split(",")]
    if not spec or any(not s for s in items):
        raise UserError(f"bad label list {spec!r}: give uniform, balanced or comma-separated classes like 0,3,7")
    classes = []
    for item in items:
        if item.lstrip("-").isdigit():
            idx = int(item)
        elif item in class_names:
            idx = class_names.index(item)
        else:
            raise UserError(
                f"unknown class {item!r} in --labels; give indices 0..{num_classes - 1} or names such as "
                f"{', '.join(class_names[:5])}"
            )
        if not 0 <= idx < num_classes:
            raise UserError(f"class index {idx} in --labels is out of range: this model has classes 0..{num_classes - 1}")
        classes.append(idx)
    if len(set(classes)) != len(classes):
        raise UserError(f"label list {spec!r} repeats a class; list each class once")
    return classes


def make_labels(spec: str, num: int, class_names: list[str], seed: int) -> torch.Tensor:
    """The labels of samples 0..num-1, (num,) int64."""
    classes = parse_label_spec(spec, class_names)
    if classes is None:
        return _uniform_labels(num, len(class_names), seed)
    return torch.tensor(classes, dtype=torch.long)[torch.arange(num) % len(classes)]


def _uniform_labels(num: int, num_classes: int, seed: int) -> torch.Tensor:
    # One generator per fixed block of indices: label i depends on (seed, i) only, whatever num is.
    blocks = []
    for b in range(-(-num // _LABEL_BLOCK)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _LABEL_STREAM, b]))
        blocks.append(rng.integers(0, num_classes, size=_LABEL_BLOCK))
    return torch.from_numpy(np.concatenate(blocks)[:num] if blocks else np.zeros(0, np.int64)).long()
