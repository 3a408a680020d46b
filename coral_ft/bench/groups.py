"""Head, medium and tail groups of classes, by training count.

The long-tail literature's groups (the OLTR convention, ImageNet-LT): many-shot (> 100 training
images), medium-shot (20-100) and few-shot (< 20). A data set whose counts do not span all three
(CIFAR10-LT with rho = 0.01 has no class under 50) is split into thirds of its classes by count
instead: head, middle and tail. The report says which rule was used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MANY_SHOT_MIN = 101  # > 100 images
FEW_SHOT_MAX = 19  # < 20 images


@dataclass(frozen=True)
class Groups:
    rule: str  # "shots" (many/medium/few) or "thirds" (head/middle/tail by count)
    classes: dict[str, list[int]]  # group name -> classes, head first

    def describe(self) -> str:
        if self.rule == "shots":
            return "many-shot (> 100 training images), medium-shot (20-100), few-shot (< 20)"
        return "thirds of the classes by training count (the counts do not span many/medium/few-shot)"

    def of_class(self) -> dict[int, str]:
        return {c: name for name, classes in self.classes.items() for c in classes}


def class_groups(counts: list[int]) -> Groups:
    """Group classes by their training counts (class index = position in `counts`)."""
    counts = list(counts)
    shots = {
        "many": [c for c, n in enumerate(counts) if n >= MANY_SHOT_MIN],
        "medium": [c for c, n in enumerate(counts) if FEW_SHOT_MAX < n < MANY_SHOT_MIN],
        "few": [c for c, n in enumerate(counts) if n <= FEW_SHOT_MAX],
    }
    if all(shots.values()):
        return Groups("shots", shots)
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))  # most images first
    parts = np.array_split(np.asarray(order), 3)
    return Groups("thirds", {name: sorted(int(c) for c in part) for name, part in zip(("head", "middle", "tail"), parts)})
