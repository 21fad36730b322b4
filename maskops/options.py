"""Settings of a stage, declared once: a frozen dataclass whose fields carry their help text.

The pipeline derives its run configuration (the Launchpad form) from these dataclasses and
maps values back by keyword, so a field added here shows up there with its description.
A field marked `in_key=False` does not change what a stage produces (a batch size, a
thread count) and stays out of cache keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, in_key: bool = True) -> Any:
    """A dataclass field with its help text (tuples and other immutable defaults only)."""
    return dataclasses.field(default=default, metadata={"help": help, "in_key": in_key})


def help_of(field: dataclasses.Field) -> str:
    return field.metadata.get("help", "")


def key_params(settings: Any) -> dict[str, Any]:
    """The fields that change a stage's output, as plain values (for cache keys and records)."""
    return {f.name: _plain(getattr(settings, f.name)) for f in dataclasses.fields(settings) if f.metadata.get("in_key", True)}


def as_dict(settings: Any) -> dict[str, Any]:
    """Every field as plain values (tuples as lists), e.g. for JSON."""
    return {f.name: _plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def from_plain(cls: type, data: dict[str, Any]) -> Any:
    """The dataclass `cls` from plain values (lists become tuples where the field is a tuple), by keyword."""
    import typing

    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) and _is_tuple(hints[k]) else v for k, v in data.items()})


def _is_tuple(hint: Any) -> bool:
    import typing

    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
