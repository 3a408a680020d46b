"""Reading a configuration: recipes (files or shipped names) and dotted `--set` overrides, built
into the typed sections (the conversion of each value: coral_ft.config.coerce)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coral_ft.config.coerce import build_section
from coral_ft.config.sections import SECTIONS, RunConfig
from coral_ft.errors import ConfigError, check
from coral_ft.files import tomllib, write_text_atomically


def config_from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from nested plain data (a parsed recipe)."""
    raw = dict(raw)
    unknown = set(raw) - set(SECTIONS)
    check(not unknown, f"unknown config section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    kwargs: dict[str, Any] = {"registered": {}}
    for name, cls in SECTIONS.items():
        section = raw.get(name) or {}
        check(isinstance(section, Mapping), f"[{name}] must be a table; got {section!r}")
        section = dict(section)
        if name == "objective":
            section["settings"] = {k: section.pop(k) for k in list(section) if isinstance(section[k], Mapping)}
        (kwargs if name in RunConfig.__dataclass_fields__ else kwargs["registered"])[name] = build_section(cls, section, name)
    return RunConfig(**kwargs)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`"train.lr=1e-4"` -> (["train", "lr"], 1e-4); values are parsed as TOML, else kept as text."""
    key, sep, text = item.partition("=")
    check(bool(sep) and key.strip() != "", f"--set expects key=value (e.g. train.lr=1e-4); got {item!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides (`section.key=value` strings or a {dotted: value} map) to raw data."""
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for path, value in items:
        path = path.split(".") if isinstance(path, str) else path
        check(path[0] in SECTIONS, f"unknown config section {path[0]!r} in override {'.'.join(path)}; known: {', '.join(SECTIONS)}")
        check(len(path) > 1, f"override {path[0]} names a section, not a key (e.g. {path[0]}.KEY=VALUE)")
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            check(isinstance(node, dict), f"{'.'.join(path)}: {part} is not a table")
        node[path[-1]] = value
    return raw


def dotted(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables flattened to {dotted key: value}, the keys `apply_overrides` takes."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        out.update(dotted(value, f"{prefix}{key}.") if isinstance(value, Mapping) else {f"{prefix}{key}": value})
    return out


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path} (`coral-ft config recipes` lists the shipped recipes)")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None


def load_config(
    recipe: str | Path | None = None,
    overrides: list[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """Recipe file or shipped recipe name (optional) + dotted overrides -> validated RunConfig."""
    raw = read_recipe(find_recipe(recipe)) if recipe is not None else {}
    return config_from_dict(apply_overrides(raw, overrides))


def save_config(config: RunConfig, path: str | Path) -> None:
    write_text_atomically(path, config.to_toml())


# -- shipped recipes ------------------------------------------------------------------------------
def shipped_recipes() -> dict[str, Path]:
    """Recipe name -> file, from the copy installed with the package (the top-level recipes/ folder
    of a source checkout is the same files)."""
    from importlib.resources import files

    folder = files("coral_ft") / "recipes"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")} if folder.is_dir() else {}


def find_recipe(recipe: str | Path) -> Path:
    """A recipe file path, or the name of a shipped recipe (`cifar10-lt`, `digits-lt.toml`)."""
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    name = path.name.removesuffix(".toml")
    if len(path.parts) <= 2 and name in shipped:  # "cifar10-lt" or "recipes/cifar10-lt.toml" from anywhere
        return shipped[name]
    raise ConfigError(f"no recipe {recipe}: give a TOML file or a shipped recipe name ({', '.join(sorted(shipped))})")
