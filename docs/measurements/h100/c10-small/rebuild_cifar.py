"""On the GPU machine: CIFAR-10's pickle layout rebuilt from the carried CIFAR10-LT subset.

The carried file holds the 50k training labels, the long-tailed subset's images at their original
indices (the selection depends on the labels alone, so coral-ft picks exactly these) and a
balanced 5,000-image subset of the test set (the reference). Other training rows are zeros and
are never read by cifar10-lt."""
import pickle
import sys
from pathlib import Path

import numpy as np

d = np.load(sys.argv[1])
out = Path(sys.argv[2]) / "cifar-10-batches-py"
out.mkdir(parents=True, exist_ok=True)
rows = np.zeros((len(d["train_labels"]), 3072), np.uint8)
rows[d["lt_indices"]] = d["lt_rows"]
for b in range(5):
    sl = slice(b * 10000, (b + 1) * 10000)
    with open(out / f"data_batch_{b + 1}", "wb") as f:
        pickle.dump({"data": rows[sl], "labels": d["train_labels"][sl].tolist()}, f, protocol=4)
with open(out / "test_batch", "wb") as f:
    pickle.dump({"data": d["test_rows"], "labels": d["test_labels"].tolist()}, f, protocol=4)
with open(out / "batches.meta", "wb") as f:
    pickle.dump({"label_names": [str(c) for c in d["classes"]]}, f, protocol=4)
print(f"{len(d['lt_indices'])} long-tailed training images, {len(d['test_labels'])} test images under {out}")
