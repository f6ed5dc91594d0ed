"""Named schema migrations (sqlite-utils ``Migrations``).

Rules for changing the schema: never edit an applied migration; append a new function
decorated with ``@MIGRATIONS(name="NNNN_what")``. Each migration runs in its own transaction
together with the record of it being applied, so a failed migration leaves nothing behind.

Enumerated columns (run kind and status, artifact kind, message role) carry no SQL ``CHECK``:
the allowed values live in Python tables (``storage.runs``, ``storage.validation``) so that
adding a value is a one-line change instead of a table rebuild.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("tunesmith")



def example_text_sql(messages_column: str) -> str:
    """SQL expression for the text indexed for search: every message's content, one per line."""
    return ("(SELECT group_concat(json_extract(value, '$.content'), char(10))"
            f" FROM json_each({messages_column}))")


# Search index sync: updates and deletes (including ON DELETE CASCADE) go through triggers.
# Inserts do not: a per-row FTS5 insert from a trigger was ~8x slower for a 100,000-example
# import than one INSERT ... SELECT per batch, so storage.versions.insert_examples
# indexes each batch itself with FTS_INSERT_BATCH_SQL.
FTS_INSERT_BATCH_SQL = (
    f"INSERT INTO examples_fts (rowid, text) SELECT id, {example_text_sql('messages')}"
    " FROM examples WHERE dataset_id = ? AND position BETWEEN ? AND ?"
)

_INITIAL_SCHEMA = [
    """CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        example_count INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE examples (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        messages TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        source_file TEXT,
        source_line INTEGER
    )""",
    "CREATE INDEX examples_dataset_position ON examples(dataset_id, position)",
    # trigram: substring search that works for CJK text, which has no spaces between words
    # (unicode61 would index a whole Chinese sentence as one token). Needs SQLite >= 3.34.
    "CREATE VIRTUAL TABLE examples_fts USING fts5(text, tokenize='trigram')",
    """CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN
        DELETE FROM examples_fts WHERE rowid = old.id;
    END""",
    f"""CREATE TRIGGER examples_fts_update AFTER UPDATE OF messages ON examples BEGIN
        UPDATE examples_fts SET text = {example_text_sql('new.messages')} WHERE rowid = new.id;
    END""",
    """CREATE TABLE base_models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        architecture TEXT,
        parameter_count INTEGER,
        dtype TEXT,
        context_length INTEGER,
        chat_template TEXT,
        special_tokens TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT 'hf-folder',
        created TEXT NOT NULL
    )""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        base_model_id INTEGER REFERENCES base_models(id) ON DELETE SET NULL,
        dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
        dataset_hash TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        started TEXT,
        ended TEXT,
        error TEXT,
        parent_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL
    )""",
    "CREATE INDEX runs_status ON runs(status)",
    """CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL
    )""",
    "CREATE INDEX metrics_run_name ON metrics(run_id, name, step)",
    """CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER,
        sha256 TEXT,
        created TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX artifacts_run ON artifacts(run_id)",
    """CREATE TABLE chats (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        model_path TEXT,
        system_prompt TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL
    )""",
    """CREATE TABLE chat_messages (
        id INTEGER PRIMARY KEY,
        chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (chat_id, position)
    )""",
]


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    """Create every table, index, FTS5 table and trigger of the first release."""
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


_VERSIONS_SCHEMA = [
    # An immutable snapshot of a dataset: an ordered list of example ids (+ split label).
    # Example rows are shared between versions; a version that changes one example adds one
    # example row and one mapping row per example, never a copy of the texts.
    """CREATE TABLE dataset_versions (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        parent_id INTEGER REFERENCES dataset_versions(id) ON DELETE SET NULL,
        operation TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        description TEXT NOT NULL DEFAULT '',
        content_hash TEXT NOT NULL,
        example_count INTEGER NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (dataset_id, number)
    )""",
    """CREATE TABLE version_examples (
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
        split TEXT,
        PRIMARY KEY (version_id, position)
    ) WITHOUT ROWID""",
    "CREATE INDEX version_examples_example ON version_examples(example_id, version_id)",
    # synthetic: made by augmentation from origin_id; previous_id: the example this row edits
    # (diffs report such pairs as "changed" instead of removed + added).
    "ALTER TABLE examples ADD COLUMN synthetic INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE examples ADD COLUMN origin_id INTEGER",
    "ALTER TABLE examples ADD COLUMN previous_id INTEGER",
    "ALTER TABLE datasets ADD COLUMN head_version_id INTEGER",
    "ALTER TABLE runs ADD COLUMN dataset_version_id INTEGER"
    " REFERENCES dataset_versions(id) ON DELETE SET NULL",
    # Every dataset that exists becomes version 1 of itself, in its stored order.
    """INSERT INTO dataset_versions (dataset_id, number, operation, description, content_hash,
        example_count, created)
       SELECT id, 1, 'import', 'existing data', content_hash, example_count, created
       FROM datasets""",
    """INSERT INTO version_examples (version_id, position, example_id)
       SELECT v.id, row_number() OVER (PARTITION BY e.dataset_id ORDER BY e.position, e.id) - 1,
              e.id
       FROM examples e JOIN dataset_versions v ON v.dataset_id = e.dataset_id""",
    "UPDATE datasets SET head_version_id ="
    " (SELECT id FROM dataset_versions v WHERE v.dataset_id = datasets.id)",
    """UPDATE runs SET dataset_version_id = (SELECT v.id FROM dataset_versions v
        WHERE v.dataset_id = runs.dataset_id AND v.content_hash = runs.dataset_hash)""",
]


@MIGRATIONS(name="0002_dataset_versions")
def _dataset_versions(db: Database) -> None:
    """Immutable dataset versions with lineage; runs reference the version they trained on."""
    for statement in _VERSIONS_SCHEMA:
        db.execute(statement)


def migrate(db: Database) -> list[str]:
    """Apply every pending migration; safe to call on every start (idempotent).

    Args:
        db: an open database.

    Returns:
        Names of the migrations applied by this call (empty when already up to date).
    """
    pending = [m.name for m in MIGRATIONS.pending(db)]
    MIGRATIONS.apply(db)
    return pending
