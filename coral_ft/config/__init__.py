"""Typed configuration: one source of truth for every command.

A run is described by `RunConfig`, one section per stage of the data path plus the commands
around it: [data], [model], [objective], [train], [sample], [eval], [latents], [bench],
[finetune] and [runtime] (`coral_ft.config.sections`: the schemas, each default written once;
the bench's, above this package, in `coral_ft.bench.schema`, which registers it).
Values come from, in increasing precedence: the dataclass defaults, a TOML recipe
(`recipes/*.toml`) or a run's saved `config.toml`, named bundles (`OFFICIAL_CODE`), dotted
`--set section.key=value` overrides, and explicit CLI flags (which default to "not given").
Every value is converted to its field's type and every section validates itself on
construction (`coral_ft.config.loading`), so a bad value is rejected, with the field named,
before any work starts. The resolved config is written next to the run as `config.toml` and
reloads with `load_config`.
"""

from coral_ft.config.loading import (
    apply_overrides,
    build_section,
    config_from_dict,
    find_recipe,
    load_config,
    parse_override,
    read_recipe,
    save_config,
    shipped_recipes,
    tomllib,
)
from coral_ft.config.sections import *  # noqa: F403  (the section schemas and their constants)
from coral_ft.config.sections import SECTIONS, RunConfig

__all__ = ["RunConfig", "SECTIONS", "apply_overrides", "build_section", "config_from_dict", "find_recipe",
           "load_config", "parse_override", "read_recipe", "save_config", "shipped_recipes", "tomllib"]
