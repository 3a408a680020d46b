"""What every stage of a bench shares, built once in `run_bench` and passed down frozen: the plan,
the process's accelerator and device, the training data's groups and counts, the metric network,
the reference statistics and the memorisation features (the last three on the main process only:
metric networks run there; other processes train and sample their shares)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from coral_ft.bench.groups import Groups, class_groups
from coral_ft.bench.plan import BenchPlan
from coral_ft.errors import UserError
from coral_ft.files import atomic_path

MEMORISATION_FILE = "memorisation.npz"
REFERENCE_FILE = "reference.npz"


@dataclass(frozen=True)
class BenchContext:
    plan: BenchPlan
    accelerator: Any  # accelerate.Accelerator, set up as every trial's trainer asks for it
    device: str
    data: Any  # the long-tailed training set (LabeledImages): counts, class names, memorisation pictures
    groups: Groups
    metric_net: Any | None  # the bench classifier, or None: evaluate() loads TF-Inception / VGG16
    reference: Path | None  # reference.npz (main process)
    memo: dict | None  # metric-network features of the training and held-out images (main process)
    progress: bool

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def counts(self) -> list[int]:
        return self.data.counts()

    def eval_settings(self, computations):
        return replace(self.plan.config.eval, metrics=list(computations))

    def feature_net(self):
        """The network whose features memorisation compares: the classifier, else TF-Inception."""
        if self.metric_net is not None:
            return self.metric_net
        from coral_ft.metrics.features import load_inception

        e = self.plan.config.eval
        net = load_inception(e.weights_dir, self.device, e.feature_batch_size, e.resize)
        net.progress = self.progress
        return net


def bench_accelerator(plan: BenchPlan, device: str):
    """The process's accelerate state, set up as every trial's trainer will ask for it: accelerate
    allows one mixed-precision setting per process, so the bench's must be the trials' own."""
    from accelerate import Accelerator

    from coral_ft.devices import training_precision
    from coral_ft.train.trainer import release_other_precision

    precisions = {trial.config.train.mixed_precision for trial in plan.trials}
    if len(precisions) > 1:
        raise UserError(f"the bench's trials train with different train.mixed_precision ({', '.join(sorted(precisions))}); "
                        "one bench process takes one: set it for all with --set train.mixed_precision=...")
    precision = precisions.pop()
    training_precision(precision, device, given=True)  # as each trial's trainer checks it (make_accelerator)
    release_other_precision(precision)
    return Accelerator(mixed_precision=precision, cpu=device == "cpu")


def check_data(plan: BenchPlan):
    """Load the training split now: a missing data set stops before any work (with how to get it)."""
    from coral_ft.data.registry import dataset_from_config

    return dataset_from_config(plan.config.data)


def prepared_plan(name: str, config, out):
    """(plan, training data) of a bench as every process that runs it prepares them: the plan,
    the data (a missing data set stops here), the smoke scale's sample counts, the runtime."""
    from coral_ft.bench.plan import fit_smoke_samples, make_plan
    from coral_ft.devices import use_runtime

    plan = make_plan(name, config, Path(out))
    data = check_data(plan)
    if plan.scale == "smoke":
        fit_smoke_samples(plan, data.num_classes)
    use_runtime(config.runtime)
    return plan, data


def build_context(plan: BenchPlan, data, progress: bool = True) -> BenchContext:
    """The accelerator, then (main process) the metric network, reference and memorisation features."""
    from coral_ft.devices import resolved_device

    device = resolved_device(plan.config.runtime.device)
    accelerator = bench_accelerator(plan, device)
    device = str(accelerator.device) if plan.config.runtime.device == "auto" else device
    plan.out.mkdir(parents=True, exist_ok=True)
    net = reference = None
    if accelerator.is_main_process:
        real = reference_images(plan)
        net = metric_network(plan, real)
        reference = reference_stats(plan, real, net, device, progress)
        del real
    ctx = BenchContext(plan, accelerator, device, data, class_groups(data.counts()), net, reference, None, progress)
    return replace(ctx, memo=memorisation_features(ctx)) if ctx.is_main else ctx


def reference_split(plan: BenchPlan) -> str:
    """The split the metrics compare against (train-full for CIFAR, test for CelebA-5 and ImageNet-LT)."""
    from coral_ft.data.registry import DATASETS

    return plan.config.bench.reference_split or DATASETS[plan.config.data.dataset].reference_split


def reference_images(plan: BenchPlan):
    """The real images every metric compares against: bench.reference_split, else the data set's
    balanced reference split."""
    from coral_ft.metrics.reference import load_reference_images

    d = plan.config.data
    return load_reference_images(f"{d.dataset}:{reference_split(plan)}", d.root, d.image_size)


def metric_network(plan: BenchPlan, real):
    """The small classifier (digits, Fashion-MNIST, smoke) or None for evaluate()'s TF-Inception / VGG16."""
    if not plan.use_classifier:
        return None
    from coral_ft.bench.classifier import load_or_train

    return load_or_train(plan.out / "classifier.pt", real.images, real.labels, len(real.class_names))


def reference_stats(plan: BenchPlan, real, net, device: str, progress: bool) -> Path:
    """The reference's features and statistics, computed once for every trial (50k real images
    through Inception and VGG16, or the classifier, cost as much as one trial's evaluation)."""
    from coral_ft.metrics.evaluation import make_reference
    from coral_ft.metrics.registry import computations_for, group_metrics

    path = plan.out / REFERENCE_FILE
    if path.is_file():
        return path
    wanted = computations_for([*plan.metrics, *group_metrics()])
    settings = replace(plan.config.eval, metrics=wanted)
    return make_reference(real, path, settings, extractor=net, device=device, progress=progress)


def memorisation_features(ctx: BenchContext) -> dict | None:
    """Metric-network features of the long-tailed training images and of held-out real images
    (the test split), cached; None when the data set has no held-out split."""
    from coral_ft.data.registry import dataset_from_config
    from coral_ft.metrics.reference import nchw_to_nhwc

    path = ctx.plan.out / MEMORISATION_FILE
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    try:
        held = dataset_from_config(ctx.plan.config.data, "test")
    except UserError:  # e.g. an image folder: no test split
        return None
    net = ctx.feature_net()
    feats = {
        "train_features": net.features(nchw_to_nhwc(ctx.data.images.numpy())), "train_labels": ctx.data.labels.numpy(),
        "heldout_features": net.features(nchw_to_nhwc(held.images.numpy())), "heldout_labels": held.labels.numpy(),
    }
    with atomic_path(path) as tmp:
        np.savez(tmp, **feats)
    return feats
