"""Base models the user can fine-tune or chat with (folders or GGUF files on disk).

The database holds what the engine found when it inspected the model (architecture, size,
dtype, context length, chat template, special tokens), so pages can show it without loading
weights. ``source`` says where it came from, e.g. ``"builtin"``, ``"hf-folder"``, ``"gguf"``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from sqlite_utils import Database

from storage.db import decode, fetch_one, json_text, utc_now
from storage.errors import Conflict, InvalidRecord
from storage.validation import check_text

# Keys register_base_model accepts; unknown keys are refused so no field is silently lost.
BASE_MODEL_FIELDS = ("name", "path", "architecture", "parameter_count", "dtype",
                     "context_length", "chat_template", "special_tokens", "source")
_JSON_COLUMNS = ("special_tokens",)


def _model_values(info: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(info) - set(BASE_MODEL_FIELDS))
    if unknown:
        raise InvalidRecord(f"unknown base model field(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(BASE_MODEL_FIELDS)}")
    values = {key: info.get(key) for key in BASE_MODEL_FIELDS}
    values["name"] = check_text(values["name"], "base model name").strip()
    if not values["name"] or values["path"] is None:
        raise InvalidRecord("a base model needs a non-empty 'name' and a 'path'")
    values["path"] = os.fspath(values["path"])
    values["special_tokens"] = json_text(values["special_tokens"], "special_tokens")
    values["source"] = values["source"] or "hf-folder"
    return values


def register_base_model(db: Database, info: Mapping[str, Any], *,
                        replace: bool = False) -> dict[str, Any]:
    """Record a base model.

    Args:
        db: the open database.
        info: ``name`` and ``path`` (required), and optionally ``architecture`` (str),
            ``parameter_count`` (int), ``dtype`` (e.g. ``"bfloat16"``), ``context_length``
            (tokens), ``chat_template`` (Jinja text), ``special_tokens`` (JSON-able dict,
            e.g. ``{"bos": ..., "eos": [...], "pad": ...}``), ``source`` (default
            ``"hf-folder"``).
        replace: update the model of the same name in place (keeping its id, so runs that
            reference it stay linked) instead of raising :class:`Conflict`.

    Returns:
        The stored row (as :func:`get_base_model`).

    Raises:
        Conflict: a model with this name exists and ``replace`` is false.
        InvalidRecord: a required field is missing or an unknown field is given.
    """
    values = _model_values(info)
    with db.atomic():
        existing = db.execute("SELECT id FROM base_models WHERE name = ?",
                              [values["name"]]).fetchone()
        if existing and not replace:
            raise Conflict(f"a base model named {values['name']!r} is already registered; "
                           "pick another name or re-register it with replace=True")
        if existing:
            assignments = ", ".join(f"{key} = ?" for key in values)
            db.execute(f"UPDATE base_models SET {assignments} WHERE id = ?",
                       [*values.values(), existing[0]])
        else:
            db.table("base_models").insert({**values, "created": utc_now()})
    return get_base_model(db, values["name"])


def get_base_model(db: Database, name_or_id: int | str) -> dict[str, Any]:
    """One base model row by id (``int``) or name (``str``), ``special_tokens`` parsed.

    Raises:
        NotFound: no base model has that id or name.
    """
    column = "id" if isinstance(name_or_id, int) else "name"
    row = fetch_one(db, f"SELECT * FROM base_models WHERE {column} = ?", [name_or_id],
                    f"no base model with {column} {name_or_id!r}; register or import it first")
    return decode(row, _JSON_COLUMNS)


def list_base_models(db: Database) -> list[dict[str, Any]]:
    """All base model rows ordered by name (case-insensitive)."""
    rows = db.query("SELECT * FROM base_models ORDER BY name COLLATE NOCASE, id")
    return [decode(row, _JSON_COLUMNS) for row in rows]


def delete_base_model(db: Database, name_or_id: int | str) -> None:
    """Forget a base model (files stay on disk); runs keep their rows with no model link.

    Raises:
        NotFound: no base model has that id or name.
    """
    model = get_base_model(db, name_or_id)
    db.execute("DELETE FROM base_models WHERE id = ?", [model["id"]])
