"""coral-ft's pipeline from Python: the functions the commands run, each on a resolved config.

    from coral_ft.api import resolve_config, train, finetune, sample, evaluate, bench

    config = resolve_config(recipe="digits-lt", sets=["train.max_steps=200"])
    model = train(config, "runs/digits")                      # coral-ft train --from-scratch
    samples = sample(model, "runs/digits/samples.npz", 500, config)
    print(evaluate(samples, "digits-lt:test", config)["metrics"]["fid"])

`resolve_config` is the commands' own resolution (defaults < recipe or saved run < --set-style
`sets` < `flags`, coral_ft.config.resolve); each function below is what its command calls after
parsing its options. (The names live here, not on `coral_ft` itself, where `train`, `sample`,
`finetune` and `bench` are the packages.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from coral_ft.config import RunConfig
from coral_ft.config.resolve import resolve_config

__all__ = ["resolve_config", "train", "finetune", "sample", "evaluate", "bench"]


def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          notes: tuple[str, ...] = ()) -> Path:
    """Train from scratch (`coral-ft train --from-scratch`) -> the run's exported model folder."""
    return _train(config, out_dir, None, resume, progress, notes)


def finetune(config: RunConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
             notes: tuple[str, ...] = ()) -> Path:
    """Fine-tune `config.finetune.base`, every weight or LoRA adapters (`coral-ft finetune`) -> the
    exported model folder (the adapter folder with LoRA)."""
    from coral_ft.finetune.source import FinetuneSource

    source = FinetuneSource(config.finetune)
    source.locate()  # a missing or unreadable base fails now, before the data is read
    return _train(config, out_dir, source, resume, progress, notes)


def _train(config, out_dir, source, resume: bool, progress: bool, notes) -> Path:
    from coral_ft.devices import use_runtime
    from coral_ft.train.trainer import train as run_training

    use_runtime(config.runtime)
    return run_training(config, out_dir, resume=resume, source=source, progress=progress, notes=notes)


def sample(model: str | Path, out: str | Path, num: int, config: RunConfig | None = None, **options) -> Path:
    """`num` samples of a run or model folder into an .npz (`coral-ft sample`), as `config.sample`
    says (default: coral-ft's sampling defaults); `options` go to coral_ft.sample.run.sample_to_npz."""
    from coral_ft.config import SampleConfig
    from coral_ft.sample.run import sample_to_npz

    return sample_to_npz(model, out, num, config.sample if config is not None else SampleConfig(), **options)


def evaluate(samples: str | Path, reference: str, config: RunConfig | None = None, *, metrics_given: bool = False,
             progress: bool = False) -> dict:
    """What `coral-ft eval` computes: the samples (an .npz or an image folder) against a stats file,
    an image folder or DATASET:SPLIT (read at the samples' size), with the metric network
    `config.eval` names or picks (coral_ft.bench.eval_network: the bench's classifier for images
    under 32x32); the metrics that run with it unless `metrics_given` (then `config.eval.metrics`)."""
    from dataclasses import replace

    from coral_ft.bench.eval_network import default_classifier_path, default_metrics, metric_network
    from coral_ft.devices import use_runtime
    from coral_ft.metrics.evaluation import evaluate as evaluate_loaded
    from coral_ft.metrics.evaluation import load_reference, load_samples

    config = config if config is not None else RunConfig()
    device = use_runtime(config.runtime)
    loaded = load_samples(Path(samples))
    side = loaded.images.shape[1]
    # A data set whose reader resizes (digits) is read at the samples' size, e.g. 8x8 digits.
    ref = load_reference(reference, config.data.root, image_size=side)
    network, extractor = metric_network(config.eval, ref, side,
                                        lambda: default_classifier_path(ref, reference, Path(samples).parent, side),
                                        reference, lambda text: print(text, file=sys.stderr))
    settings = config.eval if metrics_given else replace(config.eval, metrics=default_metrics(network, config.eval))
    return evaluate_loaded(loaded, ref, settings, extractor=extractor, device=device, progress=progress)


def bench(name: str, config: RunConfig, out: str | Path, *, progress: bool = True, report_only: bool = False
          ) -> tuple[Path, str]:
    """A benchmark (`coral-ft bench`): every trial of `config.bench`, resumed where it stopped, run
    as `config.bench.launch` says, then the report -> (results.md, the summary table)."""
    from coral_ft.bench.context import prepared_plan
    from coral_ft.bench.run import run_bench

    plan, data = prepared_plan(name, config, out)
    return run_bench(plan, data, progress=progress, report_only=report_only)
