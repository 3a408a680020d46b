"""coral-ft: CORAL (contrastive bottleneck regularisation) for long-tailed diffusion models.

The data path, one package each:
data -> models (denoiser) -> objectives -> train (+ checkpoint) -> sample -> metrics.

The Python API (docs/api.md), imported on first use so that `import coral_ft` and
`coral-ft --version` load no torch:

- `CoralRegularizer(unet, ...)`: CORAL in your own diffusers training loop;
- `resolve_config(recipe=..., sets=..., flags=...)` (the commands' own resolution) or
  `load_config(recipe, overrides)` -> `RunConfig`; `coral_ft.api.train / finetune / sample /
  evaluate / bench` run the pipeline on it, as the commands do; `export_model` turns a run into
  a plain diffusers folder;
- `load_model(path)`, `sample_to_npz(model, out, num, config.sample)`, `CoralPipeline`;
- `evaluate(samples, ref, config.eval)`, `make_reference(ref, out, config.eval)`;
- `make_plan(name, config, out)`, `check_data(plan)`, `run_bench(plan, data)`: a benchmark.

(`train`, `sample`, `finetune` and `bench` name the packages here: their functions are in coral_ft.api.)
"""

from __future__ import annotations

import importlib
from typing import Any

# The bench's [bench] section, registered with the config (which cannot import it): every RunConfig has it.
from coral_ft.bench import schema as _bench_schema  # noqa: F401

__version__ = "0.1.0"

# name -> the module that defines it (imported by __getattr__ on first use)
_API = {
    "CoralRegularizer": "coral_ft.train.regularizer",
    "RunConfig": "coral_ft.config",
    "load_config": "coral_ft.config",
    "resolve_config": "coral_ft.config.resolve",
    "FinetuneSource": "coral_ft.finetune.source",
    "export_model": "coral_ft.finetune.export",
    "load_model": "coral_ft.checkpoint.model",
    "sample_to_npz": "coral_ft.sample.run",
    "CoralPipeline": "coral_ft.sample.pipeline",
    "evaluate": "coral_ft.metrics.evaluation",
    "make_reference": "coral_ft.metrics.evaluation",
    "make_plan": "coral_ft.bench.plan",
    "check_data": "coral_ft.bench.context",
    "run_bench": "coral_ft.bench.run",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coral_ft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
