"""Tunesmith's storage layer: one SQLite file (sqlite-utils) in the per-user data dir.

Qt-free, torch-free and independent of ``engine``. Plain functions over a
:class:`sqlite_utils.Database`; rows come back as dicts with JSON columns parsed.

Thread rule: use a database only on the thread that opened it (the GUI thread or the CLI's
thread). Background jobs get rows and paths, never the connection.

Typical start-up::

    db = storage.open_database(storage.data_dir(args.data_dir))
    storage.mark_interrupted_runs(db)
"""

from __future__ import annotations

from storage.artifacts import ARTIFACT_KINDS, add_artifact, get_artifact, list_artifacts
from storage.chats import (add_chat_message, create_chat, delete_chat, get_chat,
                           get_chat_messages, list_chats, update_chat)
from storage.datasets import (create_dataset, delete_dataset, get_dataset, list_datasets,
                              update_dataset)
from storage.db import database_path, open_database, open_memory_database, open_reader
from storage.errors import Conflict, InvalidRecord, NotFound, NothingChanged, StorageError
from storage.examples import (add_example, count_examples, delete_example, get_example,
                              iter_examples, search_examples, search_ids, tag_counts,
                              tag_examples, update_example)
from storage.hashing import content_hash, file_sha256
from storage.models import (delete_base_model, get_base_model, list_base_models,
                            register_base_model)
from storage.paths import SUBDIRS, data_dir, database_file, ensure_layout, subdir
from storage.runs import (FINAL_STATUSES, RUN_KINDS, RUN_STATUSES, add_metrics, delete_run,
                          finish_run, get_metrics, get_run, list_runs, mark_interrupted_runs,
                          start_run)
from storage.validation import ROLES
from storage.versions import (SPLITS, VERSION_OPERATIONS, checkout, create_version,
                              diff_versions, get_version, head_version_id, list_versions,
                              resolve_version, undo)

__all__ = [
    "database_path", "open_reader", "ARTIFACT_KINDS", "FINAL_STATUSES", "ROLES", "RUN_KINDS", "RUN_STATUSES", "SPLITS",
    "SUBDIRS", "VERSION_OPERATIONS", "checkout", "create_version", "diff_versions",
    "get_version", "head_version_id", "list_versions", "resolve_version", "search_ids",
    "tag_counts", "tag_examples", "undo",
    "Conflict", "InvalidRecord", "NotFound", "NothingChanged", "StorageError",
    "add_artifact", "add_chat_message", "add_example", "add_metrics", "content_hash",
    "count_examples", "create_chat", "create_dataset", "data_dir", "database_file",
    "delete_base_model", "delete_chat", "delete_dataset", "delete_example", "delete_run",
    "ensure_layout",
    "file_sha256", "finish_run", "get_artifact", "get_base_model", "get_chat",
    "get_chat_messages", "get_dataset", "get_example", "get_metrics", "get_run",
    "iter_examples", "list_artifacts", "list_base_models", "list_chats", "list_datasets",
    "list_runs", "mark_interrupted_runs", "open_database", "open_memory_database",
    "register_base_model", "search_examples", "start_run", "subdir", "update_chat",
    "update_dataset", "update_example",
]
