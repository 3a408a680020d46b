"""CIFAR10-LT to and from a file small enough to travel to a lent GPU machine (64 MiB a call).

`pack` keeps the 50k training labels, the long-tailed subset's images at their original indices
(coral-ft's selection depends on the labels alone, so it picks exactly these again) and a
balanced 5,000-image subset of the test set; `rebuild` writes CIFAR-10's pickle layout back from
it, the training rows outside the subset zero (cifar10-lt never reads them).

    python benchmarks/cifar_carry.py pack ../shared/data/cifar10 .gpu/c10lt.npz   # here
    python benchmarks/cifar_carry.py rebuild .gpu/c10lt.npz /tmp/c10                # there
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

TEST_PER_CLASS = 500


def pack(root: Path, out: Path, imbalance: float = 0.01) -> None:
    from coral_ft.data.longtail import longtail_counts, select_longtail
    from coral_ft.data.readers import read_cifar10

    train, train_labels, classes = read_cifar10(root, "train")  # (N, 3, 32, 32) uint8
    test, test_labels, _ = read_cifar10(root, "test")
    keep = select_longtail(train_labels, longtail_counts(int(np.bincount(train_labels).min()), len(classes), imbalance))
    test_keep = np.concatenate([np.flatnonzero(test_labels == c)[:TEST_PER_CLASS] for c in range(len(classes))])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, train_labels=train_labels, lt_indices=keep, lt_rows=train[keep].reshape(len(keep), -1),
                        test_rows=test[test_keep].reshape(len(test_keep), -1), test_labels=test_labels[test_keep],
                        classes=np.array(classes))
    print(f"{len(keep)} long-tailed training images, {len(test_keep)} test images -> {out} "
          f"({out.stat().st_size / 2**20:.1f} MiB)")


def rebuild(packed: Path, root: Path) -> None:
    d = np.load(packed)
    out = root / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    rows = np.zeros((len(d["train_labels"]), 3072), np.uint8)
    rows[d["lt_indices"]] = d["lt_rows"]
    for b in range(5):
        part = slice(b * 10000, (b + 1) * 10000)
        with open(out / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump({"data": rows[part], "labels": d["train_labels"][part].tolist()}, f, protocol=4)
    with open(out / "test_batch", "wb") as f:
        pickle.dump({"data": d["test_rows"], "labels": d["test_labels"].tolist()}, f, protocol=4)
    with open(out / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(c) for c in d["classes"]]}, f, protocol=4)
    print(f"{len(d['lt_indices'])} long-tailed training images, {len(d['test_labels'])} test images under {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    r = sub.add_parser("rebuild")
    r.add_argument("packed", type=Path)
    r.add_argument("root", type=Path)
    args = parser.parse_args()
    pack(args.root, args.out) if args.verb == "pack" else rebuild(args.packed, args.root)


if __name__ == "__main__":
    main()
