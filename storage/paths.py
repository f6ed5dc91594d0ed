"""Where Tunesmith keeps its files: one data dir holding the SQLite file and file folders.

Layout of the data dir::

    tunesmith.db        the database (plus -wal/-shm files while open, WAL mode)
    models/             imported or downloaded base models
    runs/               per-run folders: checkpoints, adapters, logs
    exports/            merged checkpoints, GGUF files, Modelfiles
    cache/              anything that can be rebuilt (tokenized datasets, thumbnails)
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunesmith"
ENV_VAR = "TUNESMITH_DATA_DIR"
DB_FILENAME = "tunesmith.db"
SUBDIRS = ("models", "runs", "exports", "cache")


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data dir without creating it.

    Precedence: ``explicit`` (the CLI's ``--data-dir``), then the environment variable
    ``TUNESMITH_DATA_DIR``, then platformdirs' per-user data dir for ``"tunesmith"``
    (e.g. ``~/.local/share/tunesmith`` on Linux). Empty strings count as unset.

    Args:
        explicit: a path chosen by the user, or ``None``.

    Returns:
        The absolute data dir path (``~`` expanded).
    """
    if explicit is not None and str(explicit) != "":
        chosen = Path(explicit)
    elif os.environ.get(ENV_VAR):
        chosen = Path(os.environ[ENV_VAR])
    else:
        chosen = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return chosen.expanduser().absolute()


def ensure_layout(root: str | os.PathLike[str]) -> Path:
    """Create the data dir and its subfolders (``models``, ``runs``, ``exports``, ``cache``).

    Args:
        root: the data dir.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    root = Path(root)
    for name in SUBDIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def subdir(root: str | os.PathLike[str], name: str) -> Path:
    """Path of one of the data dir's subfolders (not created here).

    Args:
        root: the data dir.
        name: one of :data:`SUBDIRS`.

    Raises:
        ValueError: ``name`` is not one of :data:`SUBDIRS`.
    """
    if name not in SUBDIRS:
        raise ValueError(f"unknown data dir folder {name!r}; allowed: {', '.join(SUBDIRS)}")
    return Path(root) / name


def database_file(root: str | os.PathLike[str]) -> Path:
    """Path of the SQLite file inside the data dir ``root``."""
    return Path(root) / DB_FILENAME
