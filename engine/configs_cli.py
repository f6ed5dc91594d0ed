"""Turn config dataclass fields into command-line options and back.

The same ``metadata={"help": ...}`` that drives GUI tooltips drives ``--help`` here, so a new
field appears in both front ends without extra code. Qt-free and argparse-only.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from engine.errors import ConfigError


def option_name(field_name: str) -> str:
    """``learning_rate`` -> ``--learning-rate``."""
    return "--" + field_name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, title: str) -> None:
    """Add one ``--field-name`` option per field of config dataclass ``cls``.

    Options default to ``None`` ("not given") so :func:`config_from_args` can tell a user's
    choice from the dataclass default.
    """
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = _default_of(f)
        help_text = f.metadata.get("help", "")
        if default is not dataclasses.MISSING:
            help_text += f" (default: {_show(default)})"
        group.add_argument(option_name(f.name), dest=f"cfg_{f.name}", default=None,
                           metavar=_metavar(hints[f.name], f), help=help_text,
                           choices=f.metadata.get("choices") and [str(c) for c in f.metadata["choices"]])


def config_overrides(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the user set on the command line, parsed to their declared types.

    Raises:
        ConfigError: a value cannot be parsed as the field's type (names the option).
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        text = getattr(args, f"cfg_{f.name}", None)
        if text is not None:
            values[f.name] = parse_value(hints[f.name], text, option_name(f.name))
    return values


def parse_value(hint: Any, text: str, where: str) -> Any:
    """Parse ``text`` as type ``hint`` (int, float, bool, str, Optional, list/tuple of str)."""
    if text.lower() in {"none", "null", ""} and _allows_none(hint):
        return None
    for kind in _candidate_types(hint):
        try:
            return _parse_as(kind, text)
        except ValueError:
            continue
    raise ConfigError(f"{where}: cannot read {text!r} as {_type_name(hint)}")


def _parse_as(kind: Any, text: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        items = [item.strip() for item in text.split(",") if item.strip()]
        return tuple(items) if origin is tuple else items
    if kind is bool:
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(text)
    if kind in (int, float, str):
        return kind(text)
    raise ValueError(text)


def _candidate_types(hint: Any) -> list[Any]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        # Try numbers before strings so "3" becomes 3 for an ``int | str`` field.
        order = {int: 0, float: 1, bool: 2, str: 4}
        return sorted(args, key=lambda a: order.get(a, 3))
    return [hint]


def _allows_none(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _metavar(hint: Any, f: dataclasses.Field) -> str:
    if f.metadata.get("choices"):
        return "{" + ",".join(map(str, f.metadata["choices"])) + "}"
    return _type_name(hint).upper()


def _type_name(hint: Any) -> str:
    names = ["list" if typing.get_origin(t) in (list, tuple) else getattr(t, "__name__", str(t))
             for t in _candidate_types(hint)]
    return "|".join(names)
