"""The engine's exception hierarchy.

Every error the engine raises on purpose is an :class:`EngineError` whose message a user can
act on: what failed, where (file, line, field) and what to do. The CLI and the GUI each have
one function that turns these into messages; :class:`Cancelled` is silent there.
Modelled on Anki's ``pylib/anki/errors.py``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of all errors the engine raises deliberately."""


class ConfigError(EngineError, ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""


class DataError(EngineError, ValueError):
    """Input data (a dataset file, a row, a conversation) is invalid."""


class ModelLoadError(EngineError):
    """A model folder or file cannot be used (missing files, custom code, unknown format)."""


class OutOfMemory(EngineError):
    """The device ran out of memory; the message suggests what to lower."""


class TrainingDiverged(EngineError):
    """Training produced a non-finite loss or gradient norm; the message gives advice."""


class ExportError(EngineError):
    """Merging, converting or quantizing a model failed; the message says why in plain words."""


class Cancelled(EngineError):
    """The job was cancelled by the user. Not an error to show."""
