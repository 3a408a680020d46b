"""The one configuration resolution every command and the Python API use:

    dataclass defaults < recipe / saved run config (or a model's recorded settings) < flag bundles
    < --set key=value < flags

`flags` are {dotted field: value}, as the CLI's options give them (`coral_ft.cli.options`) or a
Python caller writes them; `BUNDLES` in them carries option bundles (e.g. `--official-code`).
Without a recipe or a run, a data set's name brings its shipped recipe, so a name means one
thing in every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coral_ft.config.loading import apply_overrides, config_from_dict, find_recipe, parse_override, read_recipe
from coral_ft.config.sections import DataConfig, RunConfig

BUNDLES = "__bundles__"  # the key of `flags` that carries the bundles a command was given


def recipe_names() -> list[str]:
    from coral_ft.config.loading import shipped_recipes

    return sorted(shipped_recipes())


def resolve_config(*, recipe: str | Path | None = None, run: str | Path | None = None, base: dict | None = None,
                   sets: list[str] | None = None, flags: dict[str, Any] | None = None,
                   default_recipe: bool = True) -> RunConfig:
    """Recipe (else a saved run config, else `base` plain data) + bundles + --set + flags -> validated RunConfig.
    `default_recipe`: with no data set named, start from the embedded default's recipe (commands that
    train or show the default run); False for commands that only read samples (eval)."""
    return config_from_dict(layered(recipe=recipe, run=run, base=base, sets=sets, flags=flags,
                                    default_recipe=default_recipe))


def layered(*, recipe: str | Path | None = None, run: str | Path | None = None, base: dict | None = None,
            sets: list[str] | None = None, flags: dict[str, Any] | None = None,
            default_recipe: bool = True) -> dict[str, Any]:
    """The plain data every layer gave, before defaults: which fields someone set, and to what.

    Without a recipe or a run, a data set's name brings its shipped recipe (`implied_recipe`), so a
    name means one thing in every command; `base` (what a model records) goes over it."""
    if recipe is not None:
        raw = read_recipe(find_recipe(recipe))
    elif run is not None:
        raw = read_recipe(run)
    else:
        implied = implied_recipe(sets=sets, flags=flags, base=base, default_recipe=default_recipe)
        raw = merged(read_recipe(find_recipe(implied)) if implied else {}, base or {})
    flags = dict(flags or {})
    for bundle in flags.pop(BUNDLES, []):
        apply_overrides(raw, bundle)
    apply_overrides(raw, sets or [])
    apply_overrides(raw, flags)
    return raw


def implied_recipe(*, sets: list[str] | None = None, flags: dict[str, Any] | None = None,
                   base: dict | None = None, default_recipe: bool = True) -> str | None:
    """The shipped recipe a data set name brings when no recipe is given: the one of the same
    name (digits-lt, cifar10-lt, ...). With no data set named and nothing else to start from
    (`base`: what a model records), the embedded default's, if `default_recipe`."""
    given = dict(apply_overrides(merged({}, base or {}), [s for s in sets or [] if s.startswith("data.dataset=")]))
    dataset = (flags or {}).get("data.dataset") or given.get("data", {}).get("dataset")
    if dataset is None and base is None and default_recipe:
        dataset = DataConfig.dataset
    return dataset if dataset in recipe_names() else None


def given_fields(sets: list[str] | None = None, flags: dict[str, Any] | None = None) -> set[str]:
    """The config fields the user set (a flag, a flag bundle or --set), rather than a recipe or a
    saved run: a recipe's value is a wish some fields treat as one (`fit_precision`), and a bench's
    scale gives way to them (bench.keep)."""
    flags = flags or {}
    given = {key for key in flags if key != BUNDLES} | {key for bundle in flags.get(BUNDLES, []) for key in bundle}
    return given | {".".join(parse_override(item)[0]) for item in sets or []}


def was_given(path: str, sets: list[str] | None = None, flags: dict[str, Any] | None = None) -> bool:
    return path in given_fields(sets, flags)


def fit_precision(config: RunConfig, given: bool) -> tuple[RunConfig, str | None]:
    """train.mixed_precision for the device the run trains on: a recipe's (or a saved run's) that
    the device lacks falls back to what it supports, with a note to say once; the user's (`given`)
    is checked (a ConfigError where the device cannot run it). coral_ft.devices.training_precision."""
    from coral_ft.devices import resolved_device, training_precision

    precision, note = training_precision(config.train.mixed_precision, resolved_device(config.runtime.device), given)
    if note:
        config.train.mixed_precision = precision
    return config, note


def merged(under: dict, over: dict) -> dict:
    """`over` laid on `under`, table by table."""
    out = dict(under)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
