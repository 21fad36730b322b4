"""Run configuration derived from the domain's settings dataclasses: one source of truth per stage.

`settings_config(CropConfig)` is a `dg.Config` with CropConfig's fields, defaults and help texts
(tuples become lists); `to_settings` maps a config back to the dataclass by keyword. A field added
to a domain dataclass appears in the Launchpad without touching this layer.
"""

import dataclasses
import types
import typing
from typing import Any

import dagster as dg
import pydantic

from maskops.options import from_plain, help_of


def _config_type(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return list[typing.get_args(hint)[0]]
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _config_type(inner) | None
    return hint


def settings_config(settings: type, *, optional: bool = False, exclude: tuple[str, ...] = ()) -> type[dg.Config]:
    """A dg.Config with the fields of the dataclass `settings`; with `optional`, every field defaults to None
    (meaning: keep the preset's value)."""
    hints = typing.get_type_hints(settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.name in exclude:
            continue
        kind = _config_type(hints[f.name])
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        if optional:
            fields[f.name] = (kind | None, pydantic.Field(default=None, description=f"{help_of(f)} Preset's value when empty."))
        else:
            fields[f.name] = (kind, pydantic.Field(default=default, description=help_of(f)))
    return pydantic.create_model(f"{settings.__name__}Fields", __base__=dg.Config, **fields)


def to_settings(settings: type, config: dg.Config, **extra: Any) -> Any:
    """The dataclass `settings` from a config made by settings_config (by keyword; None keeps the default)."""
    names = {f.name for f in dataclasses.fields(settings)}
    values = {k: v for k, v in config.model_dump().items() if k in names and v is not None}
    return from_plain(settings, {**values, **extra})


def overrides(settings: type, config: dg.Config) -> dict[str, Any]:
    """The fields of an optional config that are set (the values that replace a preset's)."""
    names = {f.name for f in dataclasses.fields(settings)}
    return {k: v for k, v in config.model_dump().items() if k in names and v is not None}
