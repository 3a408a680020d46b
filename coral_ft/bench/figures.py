"""The bench's pictures: per-class FID against training count (paper Figure 3), FID against the
guidance weight (paper Figure 8), and tail-class samples beside their nearest training images
(paper Figure 11). Each stays readable at 10, 100 and 1,000 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BAR_LIMIT = 30  # up to this many classes: grouped bars; beyond: one point per class and method
GROUP_COLOURS = ("#f2f2f2", "#e0e0e0")
MEMORISATION_PER_CLASS = 8  # samples shown per tail class


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, ax, path: Path) -> Path:
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def per_class_chart(per_method: dict[str, dict[int, float]], counts: list[int], groups, title: str, path: Path) -> Path | None:
    """Per-class FID (mean over seeds) of each method, classes sorted by training count (head on the
    left), the groups shaded. Bars up to BAR_LIMIT classes, points beyond, a fixed figure size."""
    per_method = {m: v for m, v in per_method.items() if v}
    if not per_method:
        return None
    plt = _pyplot()
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(min(12, max(6, 0.5 * len(order))) if len(order) <= BAR_LIMIT else 12, 4))
    of_class = groups.of_class()
    start = 0
    for i, name in enumerate(groups.classes):
        size = sum(1 for c in order if of_class.get(c) == name)
        ax.axvspan(start - 0.5, start + size - 0.5, color=GROUP_COLOURS[i % 2], zorder=0)
        ax.text(start + size / 2 - 0.5, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
        start += size
    width = 0.8 / len(per_method)
    for i, (method, values) in enumerate(per_method.items()):
        y = [values.get(c, np.nan) for c in order]
        if len(order) <= BAR_LIMIT:
            ax.bar(x + i * width - 0.4 + width / 2, y, width, label=method, zorder=2)
        else:
            ax.plot(x, y, ".", markersize=3 if len(order) > 200 else 5, label=method, zorder=2)
    if len(order) <= BAR_LIMIT:
        ax.set_xticks(x, [f"{c}\n{counts[c]}" for c in order], fontsize=7)
        ax.set_xlabel("class (training images), head to tail")
    else:
        ax.set_xlabel(f"{len(order)} classes sorted by training count, head to tail ({counts[order[0]]} to {counts[order[-1]]} images)")
    ax.set_ylabel("FID per class")
    ax.set_title(title, fontsize=10, pad=14)
    return _save(fig, ax, path)


def sweep_plot(sweeps: dict[str, list[dict[float, float]]], chosen: dict[str, list[float]], title: str, path: Path) -> Path | None:
    """Selection-set FID against W per method: one thin line per seed, the mean bold, chosen W marked."""
    sweeps = {m: s for m, s in sweeps.items() if s}
    if not sweeps:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (method, per_seed) in enumerate(sweeps.items()):
        colour = f"C{i}"
        ws = sorted(per_seed[0])
        for curve in per_seed:
            ax.plot(ws, [curve[w] for w in ws], color=colour, alpha=0.3, linewidth=1)
        mean = [np.mean([curve[w] for curve in per_seed]) for w in ws]
        ax.plot(ws, mean, "o-", color=colour, label=method, linewidth=2)
        for w in chosen.get(method, []):
            ax.axvline(w, color=colour, linestyle=":", alpha=0.5)
    ax.set_xlabel("guidance weight W (paper eq. 4)")
    ax.set_ylabel("FID on the selection set")
    ax.set_title(title, fontsize=10)
    return _save(fig, ax, path)


def memorisation_picture(path: Path, samples, memo, train: np.ndarray, classes: list[int], title: str,
                         names: list[str], counts: list[int]) -> Path:
    """For each tail class: a row of samples and, above it, the nearest training image of each
    (a red frame marks samples counted as memorised); `train` the training images, uint8 NHWC."""
    from PIL import Image, ImageDraw

    from coral_ft.sample.grid import LABEL_WIDTH, MIN_ROW_WIDTH

    per_class = MEMORISATION_PER_CLASS
    h, w, channels = samples.images.shape[1:]
    k = max(1, -(-MIN_ROW_WIDTH // (w * per_class)))
    tile, pad = w * k, 4
    rows = [(c, np.flatnonzero(samples.labels == c)[:per_class]) for c in classes]
    rows = [(c, idx) for c, idx in rows if len(idx)]
    canvas = Image.new("RGB", (LABEL_WIDTH + per_class * (tile + pad), 18 + len(rows) * (2 * tile + 3 * pad)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"{title}: samples (bottom) and their nearest training image (top)", fill="black")

    def paste(img, x, y, frame=None):
        im = Image.fromarray(img[..., 0] if channels == 1 else img).convert("RGB").resize((tile, tile), Image.NEAREST)
        canvas.paste(im, (x, y))
        if frame:
            draw.rectangle([x - 1, y - 1, x + tile, y + tile], outline=frame, width=2)

    for r, (c, idx) in enumerate(rows):
        y = 18 + r * (2 * tile + 3 * pad)
        share = memo.memorised[idx].mean() if len(idx) else 0.0
        draw.multiline_text((4, y + 2), f"{names[c]}\n{counts[c]} train images\nshown: {share:.0%} memorised", fill="black")
        for j, i in enumerate(idx):
            x = LABEL_WIDTH + j * (tile + pad)
            if memo.nearest_train[i] >= 0:
                paste(train[memo.nearest_train[i]], x, y)
            paste(samples.images[i], x, y + tile + pad, "red" if memo.memorised[i] else None)
    path = Path(path)
    canvas.save(path)
    return path
