"""The storage layer's exception hierarchy.

Every error raised on purpose is a :class:`StorageError` whose message says what was not
found or what clashed, and what to do about it. The CLI and the GUI turn these into messages
the same way they treat engine errors (the two hierarchies are independent because ``storage``
and ``engine`` never import each other).
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of all errors the storage layer raises deliberately."""


class NotFound(StorageError, LookupError):
    """A record (dataset, example, run, model, chat, ...) does not exist.

    The message names the kind of record and the id or name that was looked up.
    """


class Conflict(StorageError):
    """A write clashes with existing data, e.g. a duplicate dataset or model name."""


class InvalidRecord(StorageError, ValueError):
    """A value handed to storage has the wrong shape (a bad example, an unknown run status)."""


class NothingChanged(StorageError):
    """A new dataset version would have the same content hash as its parent; none was made."""
