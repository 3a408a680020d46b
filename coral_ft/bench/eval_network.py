"""Which feature network `coral-ft eval` measures with (TF-Inception or the bench's classifier), and its default metric set.

TF-Inception's features mean little for 8x8 or 16x16 grey images (upsampled to 299x299), and cost
minutes on a CPU. Below `SMALL_IMAGES` pixels a side, `eval.metric_network = "auto"` measures with
the bench's small classifier (coral_ft.bench.classifier: trained on the balanced reference
images, deterministic, cached in a file), so `coral-ft eval` and `coral-ft bench` give FIDs of one
scale. A statistics file from `make-ref` keeps the network it was made with.
"""

from __future__ import annotations

from pathlib import Path

from coral_ft.errors import UserError

SMALL_IMAGES = 32  # images smaller than this (a side) are measured with the classifier under auto
CLASSIFIER_NAME = "bench-classifier/penultimate"  # coral_ft.bench.classifier.ClassifierFeatures.name


def choose_network(settings, image_side: int, ref) -> tuple[str, str | None]:
    """("inception" or "classifier", why auto chose the classifier, else None)."""
    from coral_ft.metrics.reference import ReferenceStats

    if settings.metric_network != "auto":
        return settings.metric_network, None
    if isinstance(ref, ReferenceStats):  # the file says which network it holds
        if CLASSIFIER_NAME in ref.networks:
            return "classifier", f"the reference {ref.name} holds the classifier's statistics"
        return "inception", None
    if image_side < SMALL_IMAGES:
        return "classifier", (f"the images are {image_side}x{image_side}, under {SMALL_IMAGES}x{SMALL_IMAGES}, where "
                              "TF-Inception's features mean little")
    return "inception", None


def default_classifier_path(ref, ref_spec: str, beside: Path, image_side: int) -> Path:
    """Where the classifier lives unless --classifier says: next to a statistics file (REF.classifier.pt),
    else in `beside` (the samples' folder, make-ref's output's) named after the reference and size."""
    from coral_ft.metrics.reference import ReferenceStats

    if isinstance(ref, ReferenceStats) and str(ref_spec).endswith(".npz"):
        return Path(ref_spec).with_suffix(".classifier.pt")
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(str(ref_spec).rstrip("/")).name.replace(":", "-"))
    return Path(beside) / f"classifier-{slug}-{image_side}px.pt"


def load_metric_classifier(ref, path: Path, threads: int = 0):
    """The classifier of `ref`'s images and classes: loaded from `path`, or trained on `ref`'s images
    (ReferenceImages) and saved there, on `threads` CPU threads (0: as set). The weights depend on
    the thread count: a bench trains it under its recipe's runtime.threads (the digits': 1, which
    is also 10x faster than two busy cores). A statistics file cannot train one: its file must exist."""
    import torch

    from coral_ft.bench.classifier import load_classifier, load_or_train
    from coral_ft.metrics.reference import ReferenceStats

    if isinstance(ref, ReferenceStats):
        if not Path(path).is_file():
            raise UserError(f"the classifier of reference {ref.name} is not at {path}: pass --classifier FILE (the "
                            "one make-ref used), or a DATASET:SPLIT or image-folder --ref to train one")
        return load_classifier(path, ref.image_shape[-1], len(ref.class_names))
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return load_or_train(path, ref.images, ref.labels, len(ref.class_names))
    finally:
        torch.set_num_threads(before)


def bench_threads(ref_spec: str) -> int:
    """The CPU threads a bench of the data set named by a DATASET:SPLIT reference runs with: its
    shipped recipe's runtime.threads (0: torch's default), so eval trains the bench's classifier."""
    from coral_ft.config import read_recipe, shipped_recipes

    dataset = str(ref_spec).split(":", 1)[0] if ":" in str(ref_spec) else None
    recipe = shipped_recipes().get(dataset)
    return int(read_recipe(recipe).get("runtime", {}).get("threads", 0)) if recipe else 0


def default_metrics(network: str, settings) -> list[str]:
    """The metric set `coral-ft eval` runs when none is named: FID, and IS where the network has
    classifier logits (the classifier; TF-Inception from clean-fid's file, not the pool3-only one)."""
    if network == "classifier":
        return ["fid", "is"]
    from coral_ft.metrics.features.weights import INCEPTION_FILE, find_inception

    try:
        has_logits = find_inception(settings.weights_dir).path.name == INCEPTION_FILE
    except UserError:  # no weights: evaluate() says where to get them
        has_logits = False
    return ["fid", "is"] if has_logits else ["fid"]


def metric_network(settings, reference, side: int, default_path, ref_spec: str, say) -> tuple[str, object | None]:
    """("inception" or "classifier", the classifier or None for evaluate()'s TF-Inception / VGG16).
    `say` (a one-line message callback) is told why auto chose the classifier, and when one is trained."""
    network, why = choose_network(settings, side, reference)
    if network != "classifier":
        return network, None
    path = Path(settings.classifier) if settings.classifier else default_path()
    trains = not path.is_file()
    said = "eval: the metric network is the bench's small classifier" + (f" ({why})" if why else "")
    said += f"; trained on the reference once, saved to {path}" if trains else f", from {path}"
    said += "; --metric-network inception for TF-Inception" if why else ""
    if trains:  # said before the seconds of training
        say(said)
    net = load_metric_classifier(reference, path, threads=bench_threads(ref_spec))  # as its bench trains it
    if why and not trains:  # said once the file proved readable: a bad one is one error line
        say(said)
    return network, net

