"""Readers of image data sets on disk, each returning uint8 NCHW arrays and int64 labels.

They read the files directly (no checksums): re-packed CIFAR files, like the ones in the shared
data folder, are refused by torchvision's readers because their md5 differs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from coral_ft.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _find_dir(root: str | Path | None, name: str, first_file: str, layout: str) -> Path:
    """The folder `name` under root, or root itself, whichever holds `first_file`."""
    if root is None:
        raise DataError(f"this data set needs --data-root: a folder holding {layout}")
    root = Path(root)
    for cand in (root / name, root):
        if (cand / first_file).is_file():
            return cand
    raise DataError(f"no {layout} under {root} (expected {root / name / first_file})")


def _planar_to_nchw(data, n: int) -> np.ndarray:
    # CIFAR rows are 3072 bytes: the R plane, then G, then B, each 32x32 row-major.
    return np.asarray(data, dtype=np.uint8).reshape(n, 3, 32, 32)


def read_cifar10(root, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    layout = "CIFAR-10 in the Python pickle layout (cifar-10-batches-py/data_batch_1..5, test_batch)"
    folder = _find_dir(root, "cifar-10-batches-py", "data_batch_1", layout)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        if not (folder / name).is_file():
            raise DataError(f"missing {folder / name}; expected {layout}")
        batch = _unpickle(folder / name)
        images.append(_planar_to_nchw(batch["data"], len(batch["labels"])))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    meta = folder / "batches.meta"
    classes = _unpickle(meta)["label_names"] if meta.is_file() else [str(i) for i in range(10)]
    return np.concatenate(images), np.concatenate(labels), list(classes)


def read_cifar100(root, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    layout = "CIFAR-100 in the Python pickle layout (cifar-100-python/train, test, meta)"
    folder = _find_dir(root, "cifar-100-python", "train", layout)
    path = folder / ("train" if split == "train" else "test")
    if not path.is_file():
        raise DataError(f"missing {path}; expected {layout}")
    batch = _unpickle(path)
    labels = np.asarray(batch["fine_labels"], dtype=np.int64)
    meta = folder / "meta"
    classes = _unpickle(meta)["fine_label_names"] if meta.is_file() else [str(i) for i in range(100)]
    return _planar_to_nchw(batch["data"], len(labels)), labels, list(classes)


GREY_MODES = ("1", "L", "LA")  # PIL modes of grey images (LA: grey with alpha, dropped)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_images(paths: list[Path], image_size: int | None) -> np.ndarray:
    """uint8 (N, C, S, S): one channel when every image is grey, else RGB (a grey image's value in
    all three); resized to S = image_size (else the first image's width) where they differ."""
    from PIL import Image

    grey, size = [], image_size
    for path in paths:
        with Image.open(path) as img:
            img = img.convert("L") if img.mode in GREY_MODES else img.convert("RGB")
            size = size or img.size[0]
            if img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            grey.append(np.asarray(img))  # (S, S) grey or (S, S, 3)
    if all(a.ndim == 2 for a in grey):
        return np.stack(grey)[:, None]
    return np.stack([np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in grey]).transpose(0, 3, 1, 2)


def read_imagefolder(root, image_size: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`root/<class name>/<image>`: classes in sorted name order; grey (one channel) when every
    image is, else RGB; resized to a square."""
    layout = "an image folder: one sub-folder per class holding .png/.jpg images"
    if root is None:
        raise DataError(f"imagefolder needs --data-root: {layout}")
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(f"no class folders under {root}; expected {layout}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(root / name)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataError(f"no images under {root}; expected {layout}")
    return read_images(paths, image_size), np.asarray(labels, dtype=np.int64), classes


def read_packed(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A packed `.npz` with `images` (uint8, N x C x H x W), `labels` and optional `classes`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"packed data file not found: {path}")
    with np.load(path, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
        classes = [str(c) for c in f["classes"]] if "classes" in f else [str(i) for i in range(labels.max() + 1)]
    return images, labels, classes


def resize_square(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): bilinear, antialiased when shrinking."""
    import torch
    import torch.nn.functional as F

    if images.shape[-1] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < images.shape[-1])
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


DIGITS_SIZE = 16  # by default the 8x8 digits are upsampled; `data.image_size = 8` keeps them native
DIGITS_TEST_FRACTION = 0.2


def read_digits(split: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's bundled 8x8 digits (1,797 images), offline, as 1 x size x size uint8 (16 by default).

    A fixed split: per class the last 20% (in file order) is the test set.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float()[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    size = size or DIGITS_SIZE
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = digits.target.astype(np.int64)
    keep = np.zeros(len(labels), dtype=bool)
    for cls in range(10):
        idx = np.where(labels == cls)[0]
        n_test = int(round(len(idx) * DIGITS_TEST_FRACTION))
        part = idx[: len(idx) - n_test] if split == "train" else idx[len(idx) - n_test :]
        keep[part] = True
    return images[keep], labels[keep], [str(i) for i in range(10)]


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# Debian's package `dataset-fashion-mnist` installs the four files here; used when no root is given.
FASHION_DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), plain or gzipped: magic (dtype, ndim), sizes, data."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (the MNIST format)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims).copy()  # frombuffer is read-only


def _find_idx(root: Path, name: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
        for cand in (folder / f"{name}.gz", folder / name):
            if cand.is_file():
                return cand
    return None


def read_fashion_mnist(root, split: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fashion-MNIST (60,000 train + 10,000 test, 28x28 grey) from its four IDX files, resized to
    `size` when given. Without a root, Debian's dataset-fashion-mnist location is tried."""
    layout = ("Fashion-MNIST's IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; from github.com/zalandoresearch/fashion-mnist, "
              "or Debian's package dataset-fashion-mnist)")
    folder = Path(root) if root is not None else FASHION_DEBIAN_ROOT
    names = FASHION_FILES[split]
    paths = [_find_idx(folder, n) for n in names]
    if None in paths:
        hint = "pass --data-root" if root is None else f"not under {folder}"
        raise DataError(f"Fashion-MNIST not found ({hint}): a folder holding {layout}")
    images, labels = _read_idx(paths[0]), _read_idx(paths[1]).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{paths[0]} and {paths[1]} do not match: {images.shape} images, {labels.shape} labels")
    images = images[:, None]  # (N, 1, 28, 28)
    if size is not None:
        images = resize_square(images, size)
    return images, labels, list(FASHION_CLASSES)
