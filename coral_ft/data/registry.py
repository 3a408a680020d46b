"""Named data sets: name -> how to read it, whether a long tail is cut from it.

Every data set has the splits `train` (long-tailed for the `-lt` names), `train-full` (the
balanced training set: the peers' FID reference) and `test`. `load_dataset` returns a
`LabeledImages` held in memory as uint8, which is small for every benchmark here (ImageNet-LT at
64x64 is 1.4 GB).

The table imports nothing heavy (numpy and the readers come with the first read): the CLI lists
the names in its help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coral_ft.errors import check, check_choice

if TYPE_CHECKING:
    import numpy as np
    import torch

SPLITS = ("train", "train-full", "test")


@dataclass
class LabeledImages:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def counts(self) -> list[int]:
        from coral_ft.data.longtail import class_counts

        return class_counts(self.labels.numpy(), self.num_classes)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DatasetSpec:
    reader: str  # the files it is read from (`read_balanced`): a data set name without "-lt"
    longtail: bool  # cut a long tail (paper eq. 8) from the balanced training split
    reference_split: str = "train-full"  # what FID compares against by default
    description: str = ""
    resizes: bool = False  # the reader honours an image size; the others have one fixed size
    # Small grey images, where ImageNet features mean little: the bench measures with a small
    # classifier trained on the balanced real images instead (coral_ft.bench.classifier).
    classifier_metrics: bool = False
    bundled: bool = False  # ships with a dependency: no files, no --data-root
    # What the files hold, known without reading them (a --dry-run's plan): classes and (C, H, W)
    # at the native size; None where only the files say (an image folder).
    classes: int | None = None
    shape: tuple[int, int, int] | None = None


def read_balanced(reader: str, root, split: str, image_size) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and class names of a balanced split ("train" or "test") of `reader`'s files."""
    from coral_ft.data import readers

    if reader in ("cifar10", "cifar100"):
        return getattr(readers, f"read_{reader}")(root, split)
    if reader == "digits":
        return readers.read_digits(split, image_size)
    if reader == "fashion-mnist":
        return readers.read_fashion_mnist(root, split, image_size)
    if reader == "imagefolder":  # taken as it is (often naturally imbalanced); it has no test split
        return readers.read_imagefolder(root, image_size)
    from coral_ft.data.prepare import read_prepared

    # ImageNet-LT's "test" split is the balanced 20k validation list: the paper's FID reference.
    return read_prepared(root, reader, "val" if reader == "imagenet-lt" and split == "test" else split)


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", False, description="CIFAR-10, balanced", classes=10, shape=(3, 32, 32)),
    "cifar100": DatasetSpec("cifar100", False, description="CIFAR-100, balanced", classes=100, shape=(3, 32, 32)),
    "cifar10-lt": DatasetSpec("cifar10", True, description="CIFAR10-LT (paper eq. 8)", classes=10, shape=(3, 32, 32)),
    "cifar100-lt": DatasetSpec("cifar100", True, description="CIFAR100-LT (paper eq. 8)", classes=100, shape=(3, 32, 32)),
    "digits-lt": DatasetSpec("digits", True, description="scikit-learn digits, long-tailed (offline)", resizes=True,
                             classifier_metrics=True, bundled=True, classes=10, shape=(1, 8, 8)),
    "fashion-mnist": DatasetSpec("fashion-mnist", False, description="Fashion-MNIST, balanced (IDX files; Debian: dataset-fashion-mnist)",
                                 resizes=True, classifier_metrics=True, classes=10, shape=(1, 28, 28)),
    "fashion-mnist-lt": DatasetSpec("fashion-mnist", True, description="Fashion-MNIST-LT (paper eq. 8)", resizes=True,
                                    classifier_metrics=True, classes=10, shape=(1, 28, 28)),
    "celeba-5": DatasetSpec("celeba-5", False, reference_split="test", description="CelebA-5 hair colour, 64x64 (coral-ft data prepare)",
                            classes=5, shape=(3, 64, 64)),
    "imagenet-lt": DatasetSpec("imagenet-lt", False, reference_split="test", description="ImageNet-LT, 64x64 (coral-ft data prepare)",
                               classes=1000, shape=(3, 64, 64)),
    "imagefolder": DatasetSpec("imagefolder", False, reference_split="train", description="root/<class>/<image>",
                               resizes=True),
}


def declared_shape(data) -> tuple[int, tuple[int, int, int]] | None:
    """(classes, (C, H, W)) that a [data] section will read, from the registry alone (no files);
    None for an image folder."""
    spec = DATASETS.get(data.dataset)
    if spec is None or spec.classes is None or spec.shape is None:
        return None
    c, h, w = spec.shape
    size = data.image_size if spec.resizes and data.image_size else None
    return spec.classes, (c, size or h, size or w)


def check_data_settings(name: str, root: str | None, imbalance: float, image_size: int | None) -> DatasetSpec:
    """The rules of a [data] section, checked where one is built (DataConfig) and where a data set is read."""
    check(name in DATASETS, f"unknown data set (data.dataset) {name!r}; choose from {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    check(root is None or not spec.bundled, f"{name} ships with scikit-learn and reads no --data-root; drop --data-root {root}")
    check(0.0 < imbalance <= 1.0, f"data.imbalance (rho) must be in (0, 1]; got {imbalance}")
    check(image_size is None or image_size >= 8, f"data.image_size must be at least 8; got {image_size}")
    resizing = ", ".join(n for n, s in DATASETS.items() if s.resizes)
    check(image_size is None or spec.resizes,
          f"{name} has a fixed image size; data.image_size applies only to {resizing}: remove it")
    return spec


def load_dataset(name: str, root: str | None = None, split: str = "train", imbalance: float = 0.01,
                 image_size: int | None = None) -> LabeledImages:
    """Read a named data set split into memory (uint8)."""
    spec = check_data_settings(name, root, imbalance, image_size)
    check_choice("split", split, SPLITS)
    import numpy as np
    import torch

    from coral_ft.data.longtail import longtail_counts, select_longtail

    images, labels, classes = read_balanced(spec.reader, root, "test" if split == "test" else "train", image_size)
    if split == "train" and spec.longtail:
        head = int(np.bincount(labels).min())  # N of eq. 8: the balanced per-class count
        keep = select_longtail(labels, longtail_counts(head, len(classes), imbalance))
        images, labels = images[keep], labels[keep]
    return LabeledImages(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), classes)


def dataset_from_config(data_cfg, split: str = "train") -> LabeledImages:
    return load_dataset(data_cfg.dataset, data_cfg.root, split, data_cfg.imbalance, data_cfg.image_size)
