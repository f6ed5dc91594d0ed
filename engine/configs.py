"""Helpers for frozen config dataclasses that carry help text and validate themselves.

Modelled on PEFT's ``LoraConfig``: each field is declared with :func:`option`, whose help text
drives CLI ``--help`` and GUI tooltips; ``__post_init__`` validates with messages that name the
field and the allowed values (:class:`engine.errors.ConfigError`). Configs round-trip through
JSON (:func:`to_dict` / :func:`from_dict`) so a run can be repeated exactly from the database.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, TypeVar

from engine.errors import ConfigError

T = TypeVar("T")


def option(default: Any, help: str, *, choices: Iterable[Any] | None = None, **kw: Any) -> Any:
    """Declare a config field with its help text (and allowed values, when a closed set).

    Args:
        default: the default value (lists are copied per instance).
        help: one or two sentences for ``--help`` and tooltips; give units.
        choices: the allowed values, when the set is closed.
    """
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kw)
    return dataclasses.field(default=default, metadata=metadata, **kw)


def field_help(cls: type, name: str) -> str:
    """The help text declared for field ``name`` of config class ``cls``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}[name]


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build config ``cls`` from a dict, refusing unknown keys by name.

    Raises:
        ConfigError: a key is not a field of ``cls``, or a value fails validation.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; "
                          f"known fields are {', '.join(sorted(names))}")
    return cls(**data)


def check_choices(config: Any) -> None:
    """Raise :class:`ConfigError` for any field whose value is not among its declared choices."""
    for f in dataclasses.fields(config):
        allowed = f.metadata.get("choices")
        if allowed is not None and getattr(config, f.name) not in allowed:
            raise ConfigError(f"{f.name} must be one of {', '.join(map(str, allowed))}; "
                              f"got {getattr(config, f.name)!r}")


def check_range(name: str, value: float | int | None, *, low: float | None = None,
                high: float | None = None, low_open: bool = False, allow_none: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (``low < value`` if ``low_open``).

    Args:
        name: the field name, used in the message.
        value: the value to check.
        low, high: inclusive bounds; ``None`` means unbounded.
        low_open: make the lower bound exclusive.
        allow_none: accept ``None`` as "not set".
    """
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number; got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be in {bracket}{lo}, {hi}]; got {value!r}")
