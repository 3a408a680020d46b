"""The conversion of every configuration value to its field's type, with an error that names the
field, the type it needs and the value given (shared by the section schemas and the loader).

The conversion is written here rather than taken from pydantic (v2 is installed with the stack):
its lax mode, the one that converts the text of `--set` and of CLI comma lists, also converts
booleans to numbers (`--set train.lr=true` -> 1.0) and "yes", "on" or "1" to true, which these
rules refuse; its strict mode converts no text at all. Keeping the messages and the rules would
take a pre-pass as long as the conversion below.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from coral_ft.errors import ConfigError, check

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("nothing (remove the key)" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a table"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


_NO = object()  # "this value cannot be that type"


def _number(value):
    """Numbers given as text (CLI comma lists) read as numbers; anything else is left alone."""
    for kind in (int, float):
        try:
            return kind(value) if isinstance(value, str) else value
        except ValueError:
            continue
    return value


def _to_bool(value):
    if isinstance(value, bool):
        return value
    return value.lower() == "true" if isinstance(value, str) and value.lower() in ("true", "false") else _NO


def _to_int(value):
    value = _number(value)
    if isinstance(value, bool):  # true is not 1 here
        return _NO
    return value if isinstance(value, int) else int(value) if isinstance(value, float) and value.is_integer() else _NO


def _to_float(value):
    value = _number(value)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _NO


SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: lambda v: v if isinstance(v, str) else _NO,
           Any: lambda v: v}


def _coerce(value, tp, where: str):
    """`value` as type `tp` (a field's annotation), or a ConfigError naming the field and the type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    out = _NO
    if origin in (typing.Union, types.UnionType):
        out = None if value is None and type(None) in args else _first_fit(value, [a for a in args if a is not type(None)], where)
    elif origin is list:
        if isinstance(value, str):  # --set x=a,b and CLI comma lists
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            out = [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, Mapping):
            out = {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    elif dataclasses.is_dataclass(tp):
        out = value if isinstance(value, tp) else build_section(tp, value, where) if isinstance(value, Mapping) else _NO
    elif tp in SCALARS:
        out = SCALARS[tp](value)
    if out is _NO:
        raise ConfigError(f"{where} must be {_type_name(tp)}; got {value!r}")
    return out


def _first_fit(value, types_, where: str):
    for tp in types_:
        try:
            return _coerce(value, tp, where)
        except ConfigError:
            continue
    return _NO


def build_section(cls, values: Mapping[str, Any], where: str):
    """A section dataclass from plain values: unknown keys and wrong types are ConfigErrors."""
    check(isinstance(values, Mapping), f"[{where}] must be a table; got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(values) - set(names)
    check(not unknown, f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))} (known: {', '.join(names)})")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()})
