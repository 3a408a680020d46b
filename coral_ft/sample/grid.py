"""Sample grids people can read: one row per class, each row labelled with the class name and
its training count, small images scaled up (nearest neighbour) so that a row is at least
`MIN_ROW_WIDTH` pixels wide.

With 100 or 1,000 classes, `grid_classes` picks up to `MAX_GRID_CLASSES` rows spread from the
head to the tail (by training count when counts are known).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_GRID_CLASSES = 10
MIN_ROW_WIDTH = 256  # pixels of images per row, after scaling
LABEL_WIDTH = 150  # pixels of the text column


def grid_classes(num_classes: int, counts: list[int] | None = None, max_rows: int = MAX_GRID_CLASSES) -> list[int]:
    """Up to `max_rows` classes spread evenly from head (most images) to tail (fewest)."""
    order = sorted(range(num_classes), key=lambda c: (-counts[c], c)) if counts else list(range(num_classes))
    picks = np.linspace(0, num_classes - 1, min(num_classes, max_rows)).round().astype(int)
    return [order[i] for i in picks]


def save_class_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
                    counts: list[int] | None = None, per_class: int = 10, classes: list[int] | None = None,
                    title: str | None = None) -> Path:
    """uint8 images (N, H, W, C) with labels (N,) -> a PNG, one labelled row per class shown."""
    from PIL import Image, ImageDraw

    classes = classes if classes is not None else grid_classes(len(class_names), counts)
    rows = [images[labels == c][:per_class] for c in classes]
    rows = [(c, r) for c, r in zip(classes, rows) if len(r)]
    if not rows:
        raise ValueError("no samples of the classes to show")
    h, w, channels = images.shape[1:]
    per_row = max(len(r) for _, r in rows)
    k = max(1, -(-MIN_ROW_WIDTH // (w * per_row)))  # the scale: a row at least MIN_ROW_WIDTH wide
    pad = 2
    top = 18 if title else 0
    canvas = Image.new("RGB", (LABEL_WIDTH + per_row * (w * k + pad), top + len(rows) * (h * k + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill="black")
    for i, (c, row) in enumerate(rows):
        y = top + i * (h * k + pad)
        text = class_names[c] if counts is None else f"{class_names[c]}\n{counts[c]} train images"
        draw.multiline_text((4, y + 2), text, fill="black")
        for j, img in enumerate(row):
            tile = Image.fromarray(img[..., 0] if channels == 1 else img).convert("RGB").resize((w * k, h * k), Image.NEAREST)
            canvas.paste(tile, (LABEL_WIDTH + j * (w * k + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
