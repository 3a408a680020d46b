"""The `[bench]` table of a recipe: which methods to compare, how each samples, the paper's numbers.

    [bench]
    title = "CIFAR100-LT (rho = 0.01), 32x32"
    metrics = ["fid", "is", "f8", "recall", "f1_8"]    # the paper's table columns
    num_samples = 50000

    [bench.methods.cbdm]
    guidance = 1.6                                      # Table 3's W for this method
    overrides = { "objective.cbdm.tau" = 1.0 }          # dotted config overrides for its run
    paper = { fid = 6.02, is = 12.92, ... }             # Table 1 values, printed beside ours

`RunConfig.extra["bench"]` holds it verbatim; `bench_spec` validates it into dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral_ft.errors import ConfigError

# Table column -> (key in evaluate()'s result, field of that result).
BENCH_METRICS: dict[str, tuple[str, str]] = {
    "fid": ("fid", "value"),
    "is": ("is", "value"),
    "f8": ("prd", "f8_recall"),
    "f1_8": ("prd", "f1_8_precision"),
    "recall": ("recall", "recall"),
    "precision": ("recall", "precision"),
    "kid": ("kid", "value"),
}


@dataclass
class MethodSpec:
    name: str
    guidance: float
    overrides: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchSpec:
    title: str
    metrics: list[str]
    num_samples: int
    methods: dict[str, MethodSpec]


def bench_spec(config) -> BenchSpec:
    """Validate a RunConfig's free `[bench]` table (ConfigError naming the bad key)."""
    from coral_ft.objectives import OBJECTIVES

    table = config.extra.get("bench")
    if not isinstance(table, dict):
        raise ConfigError("the recipe has no [bench] table; see docs/benchmarks.md for its layout")
    metrics = list(table.get("metrics", ["fid"]))
    unknown = [m for m in metrics if m not in BENCH_METRICS]
    if unknown:
        raise ConfigError(f"bench.metrics: unknown {', '.join(unknown)}; choose from {', '.join(BENCH_METRICS)}")
    num_samples = int(table.get("num_samples", 50_000))
    if num_samples <= 0:
        raise ConfigError(f"bench.num_samples must be positive; got {num_samples}")
    methods = {}
    for name, entry in dict(table.get("methods", {})).items():
        if name not in OBJECTIVES:
            raise ConfigError(f"bench.methods.{name}: not a method; choose from {', '.join(sorted(OBJECTIVES))}")
        if "guidance" not in entry or float(entry["guidance"]) < 0:
            raise ConfigError(f"bench.methods.{name}.guidance must be given and >= 0")
        paper = dict(entry.get("paper", {}))
        extra = set(paper) - set(metrics)
        if extra:
            raise ConfigError(f"bench.methods.{name}.paper has values for {', '.join(sorted(extra))}, not in bench.metrics")
        spec = MethodSpec(name, float(entry["guidance"]), dict(entry.get("overrides", {})), {k: float(v) for k, v in paper.items()})
        method_config(config, spec)  # raises now on a bad override key or value
        methods[name] = spec
    if not methods:
        raise ConfigError("bench.methods is empty: give at least one [bench.methods.<method>] table")
    return BenchSpec(str(table.get("title", config.data.dataset)), metrics, num_samples, methods)


def method_config(config, method: MethodSpec, extra_overrides: dict[str, Any] | None = None):
    """The run config of one method: the recipe, its objective, its overrides, its guidance W."""
    from coral_ft.config import apply_overrides, config_from_dict

    overrides = {"objective.method": method.name, "sample.guidance": method.guidance, **method.overrides, **(extra_overrides or {})}
    return config_from_dict(apply_overrides(config.to_dict(), overrides))
