"""Pack the data sets that cannot ship (CelebA-5, ImageNet-LT) into 64x64 uint8 `.npz` files, once.

Layout written under the data root, read back by the registry (`read_packed`):

    <root>/celeba-5/train.npz, test.npz
    <root>/imagenet-lt/train.npz, val.npz, test.npz

Each file holds `images` (N, 3, 64, 64) uint8, `labels` (N,) int64 and `classes`. Images are
centre-cropped to a square and resized (PIL `ImageOps.fit`, bicubic), as the peers' loaders do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from coral_ft.errors import DataError
from coral_ft.files import atomic_path

IMAGE_SIZE = 64
CELEBA_CLASSES = ("black", "brown", "blond", "gray", "bald")
CELEBA_ATTRIBUTES = ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair", "Bald")  # same order
CELEBA_TEST_PER_CLASS = 100  # the balanced test split of the M2m lists
IMAGENET_LISTS = {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"}

CELEBA_HELP = (
    "download CelebA's img_align_celeba/ (aligned JPEGs) and list_attr_celeba.txt from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put both in one folder passed as --source"
)
IMAGENET_HELP = (
    "put the ILSVRC2012 train/ and val/ image folders under --source, and the OLTR lists "
    "ImageNet_LT_train.txt, ImageNet_LT_val.txt, ImageNet_LT_test.txt in one folder passed as --lists "
    "(all three are published with OLTR: https://github.com/zhmiao/OpenLongTailRecognition-OLTR)"
)


def packed_path(root: str | Path, dataset: str, split: str) -> Path:
    return Path(root) / dataset / f"{split}.npz"


def load_square(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """(3, size, size) uint8: RGB, centre crop to a square, bicubic resize."""
    from PIL import Image, ImageOps

    if not path.is_file():
        raise DataError(f"image listed but missing: {path}")
    with Image.open(path) as img:
        return np.asarray(ImageOps.fit(img.convert("RGB"), (size, size), Image.BICUBIC)).transpose(2, 0, 1)


def read_split_list(path: Path) -> list[tuple[str, int]]:
    """Lines `relative/path label` (the OLTR and M2m list format)."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}:{n}: expected 'relative/path label', got {line!r}")
        rows.append((parts[0], int(parts[1])))
    return rows


def celeba_hair_labels(attr_file: Path) -> list[tuple[str, int]]:
    """(file name, class) for images with exactly one of the five hair attributes, file order."""
    lines = attr_file.read_text().splitlines()
    names = lines[1].split()
    missing = [a for a in CELEBA_ATTRIBUTES if a not in names]
    if missing:
        raise DataError(f"{attr_file} lacks attribute column(s) {', '.join(missing)}; is it list_attr_celeba.txt?")
    cols = [names.index(a) for a in CELEBA_ATTRIBUTES]
    rows = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        flags = [parts[1 + c] == "1" for c in cols]  # values are 1 / -1
        if sum(flags) == 1:
            rows.append((parts[0], flags.index(True)))
    return rows


def prepare_celeba5(source: str | Path, root: str | Path, lists: str | Path | None = None, force: bool = False) -> list[Path]:
    """CelebA-5 (hair colour: black, brown, blond, gray, bald) as 64x64 train/test packs.

    With `lists` (a folder with train.txt and test.txt, `file label` lines, e.g. the M2m split)
    those lists are used as given; otherwise every image with exactly one of the five attributes
    is kept and the last 100 of each class (file order) form a balanced test split.
    """
    source = Path(source)
    images_dir = source / "img_align_celeba"
    attr_file = source / "list_attr_celeba.txt"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir} not found: {CELEBA_HELP}")
    if lists is not None:
        splits = {}
        for s in ("train", "test"):
            f = Path(lists) / f"{s}.txt"
            if not f.is_file():
                raise DataError(f"{f} not found: --lists must hold train.txt and test.txt ('file label' lines)")
            splits[s] = read_split_list(f)
    else:
        if not attr_file.is_file():
            raise DataError(f"{attr_file} not found: {CELEBA_HELP}")
        rows = celeba_hair_labels(attr_file)
        splits = {"train": [], "test": []}
        for c in range(len(CELEBA_CLASSES)):
            of_class = [r for r in rows if r[1] == c]
            cut = max(len(of_class) - CELEBA_TEST_PER_CLASS, len(of_class) // 2)
            splits["train"] += of_class[:cut]
            splits["test"] += of_class[cut:]
    return _pack(splits, images_dir, root, "celeba-5", list(CELEBA_CLASSES), force)


def prepare_imagenet_lt(source: str | Path, lists: str | Path, root: str | Path, force: bool = False) -> list[Path]:
    """ImageNet-LT (OLTR lists) as 64x64 train/val/test packs; classes named by WordNet id."""
    source, lists = Path(source), Path(lists)
    if not source.is_dir():
        raise DataError(f"ImageNet source {source} not found: {IMAGENET_HELP}")
    splits = {}
    for s, name in IMAGENET_LISTS.items():
        if not (lists / name).is_file():
            raise DataError(f"{lists / name} not found: {IMAGENET_HELP}")
        splits[s] = read_split_list(lists / name)
    num_classes = max(label for rows in splits.values() for _, label in rows) + 1
    classes = [str(i) for i in range(num_classes)]
    for rel, label in splits["train"]:
        classes[label] = Path(rel).parent.name  # e.g. n01440764
    return _pack(splits, source, root, "imagenet-lt", classes, force)


def _pack(splits, image_dir: Path, root, dataset: str, classes: list[str], force: bool) -> list[Path]:
    """Read, resize and save each split; written to a temporary name first so a crash leaves none."""
    written = []
    for split, rows in splits.items():
        out = packed_path(root, dataset, split)
        if out.is_file() and not force:
            continue  # prepared once; --force to redo
        images = [load_square(image_dir / rel) for rel, _ in tqdm(rows, desc=f"{dataset} {split}", unit="img")]
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            np.savez(tmp, images=np.stack(images) if images else np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
                     labels=np.asarray([label for _, label in rows], dtype=np.int64), classes=np.asarray(classes))
        written.append(out)
    return written


def read_prepared(root, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Registry reader: the packed split, or a DataError naming the command that makes it."""
    from coral_ft.data.readers import read_packed

    command = {
        "celeba-5": "coral-ft data prepare celeba-5 --source DIR --data-root ROOT",
        "imagenet-lt": "coral-ft data prepare imagenet-lt --source DIR --lists DIR --data-root ROOT",
    }[dataset]
    if root is None or not packed_path(root, dataset, split).is_file():
        where = packed_path(root, dataset, split) if root is not None else f"--data-root/{dataset}/{split}.npz"
        raise DataError(f"{dataset} is not prepared ({where} missing): run `{command}` first ({CELEBA_HELP if dataset == 'celeba-5' else IMAGENET_HELP})")
    return read_packed(packed_path(root, dataset, split))
