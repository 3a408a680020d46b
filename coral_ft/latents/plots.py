"""2-D maps of bottleneck features, models side by side (paper Figs. 1, 9, 10, 12, 13).

t-SNE comes from scikit-learn; UMAP from umap-learn, an optional extra
(`pip install coral-ft[umap]`). One figure holds one panel per model with the same class colours
in every panel; the marker shape says whether a class is a head class (circle), a tail class
(triangle) or in between (square), so tail samples lying inside head clusters stand out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_ft.errors import UserError

PROJECTIONS = ("tsne", "umap")
DISPLAY_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}
GROUP_MARKERS = {"head": "o", "middle": "s", "tail": "^"}
MAX_LEGEND_CLASSES = 20  # beyond this the class legend would hide the panels
# Below this many points t-SNE runs on one OpenMP thread: its parallel gradient gains little on
# small maps, and spinning threads on a busy machine cost more (300 points on a loaded 2-core
# machine: 17 s with 2 threads, 2.5 s with 1).
TSNE_SINGLE_THREAD_BELOW = 2000


def check_projection(method: str) -> None:
    """Raise a one-line UserError for an unknown method or a missing optional package."""
    if method not in PROJECTIONS:
        raise UserError(f"unknown projection {method!r}; choose from {', '.join(PROJECTIONS)}")
    if method == "umap":
        import importlib.util

        if importlib.util.find_spec("umap") is None:
            raise UserError("UMAP needs the umap-learn package: pip install coral-ft[umap] (or use --plot tsne)")


def project_2d(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with t-SNE or UMAP, seeded (UMAP then runs single-threaded, reproducibly)."""
    check_projection(method)
    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # perplexity must stay below N; 30 is the usual value for the paper's thousands of points.
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        with threadpool_limits(1 if n < TSNE_SINGLE_THREAD_BELOW else None, user_api="openmp"):
            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    import warnings

    import umap

    neighbours = int(min(15, max(2, n - 1)))
    with warnings.catch_warnings():  # umap-learn warns that a seed means one thread: that is the point
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed, n_jobs=1).fit_transform(features)


@dataclass
class Panel:
    title: str
    xy: np.ndarray  # (N, 2)
    labels: np.ndarray  # (N,)


def class_colours(num_classes: int) -> np.ndarray:
    """(C, 4) RGBA, one per class, the same in every panel."""
    from matplotlib import colormaps

    if num_classes <= 10:
        return colormaps["tab10"](np.arange(num_classes))
    if num_classes <= 20:
        return colormaps["tab20"](np.arange(num_classes))
    return colormaps["turbo"](np.linspace(0, 1, num_classes))


def class_groups(num_classes: int, head: list[int], tail: list[int]) -> list[str]:
    return ["head" if c in head else "tail" if c in tail else "middle" for c in range(num_classes)]


def plot_panels(
    panels: list[Panel],
    class_names: list[str],
    counts: list[int],
    head: list[int],
    tail: list[int],
    title: str,
    path: str | Path,
) -> Path:
    """Write one PNG with a panel per model; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    num_classes = len(class_names)
    colours = class_colours(num_classes)
    groups = class_groups(num_classes, head, tail)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 1.8, 4.8), squeeze=False)
    size = float(np.clip(6000 / max(len(panels[0].labels), 1), 5, 36))  # marker area: smaller when crowded
    for ax, panel in zip(axes[0], panels):
        # Draw head first and tail last so tail points stay visible on top of head clusters.
        for group in ("head", "middle", "tail"):
            for c in (c for c in range(num_classes) if groups[c] == group):
                pts = panel.xy[panel.labels == c]
                ax.scatter(pts[:, 0], pts[:, 1], s=size, color=colours[c], marker=GROUP_MARKERS[group],
                           alpha=0.75, linewidths=0)  # fmt: skip
        ax.set_title(panel.title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], marker=GROUP_MARKERS[g], color="black", linestyle="", label=g) for g in ("head", "middle", "tail")]
    if num_classes <= MAX_LEGEND_CLASSES:
        handles += [
            Line2D([], [], marker=GROUP_MARKERS[groups[c]], color=colours[c], linestyle="",
                   label=f"{class_names[c]} ({counts[c]})")
            for c in range(num_classes)
        ]  # fmt: skip
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False, title="class (train count)", title_fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 1.7 / fig.get_figwidth(), 1))  # room for the legend (inches)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
