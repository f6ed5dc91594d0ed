"""Data dir resolution, connection settings, migrations and the import boundary."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import platformdirs
import pytest
from sqlite_utils import Database

import storage
from storage.migrations import MIGRATIONS

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_data_dir_explicit_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_DATA_DIR", str(tmp_path / "env"))
    assert storage.data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_data_dir_env_beats_platformdirs(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_DATA_DIR", str(tmp_path / "env"))
    assert storage.data_dir() == tmp_path / "env"
    assert storage.data_dir("") == tmp_path / "env"


def test_data_dir_falls_back_to_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNESMITH_DATA_DIR", raising=False)
    expected = Path(platformdirs.user_data_dir("tunesmith", appauthor=False))
    assert storage.data_dir() == expected
    assert expected.name == "tunesmith"


def test_open_database_creates_layout(tmp_path: Path) -> None:
    root = tmp_path / "data"
    db = storage.open_database(root)
    db.close()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "cache", "exports", "models", "runs"]
    assert (root / "tunesmith.db").is_file()
    assert storage.subdir(root, "exports") == root / "exports"
    with pytest.raises(ValueError, match="allowed: models"):
        storage.subdir(root, "weights")


def test_open_database_uses_env_when_no_argument(data_dir: Path) -> None:
    storage.open_database().close()
    assert (data_dir / "tunesmith.db").is_file()


def test_wal_and_foreign_keys_are_on(file_db: Database) -> None:
    assert file_db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert file_db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_foreign_keys_enforced(file_db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        file_db.execute("INSERT INTO examples (dataset_id, position, messages)"
                        " VALUES (999, 0, '[]')")


def test_migrations_idempotent(tmp_path: Path) -> None:
    first = storage.open_database(tmp_path)
    storage.create_dataset(first, "kept", [{"messages": [{"role": "user", "content": "x"}]}])
    first.close()
    second = storage.open_database(tmp_path)
    applied = [m.name for m in MIGRATIONS.applied(second)]
    assert applied == ["0001_initial", "0002_dataset_versions"]
    assert MIGRATIONS.pending(second) == []
    assert [d["name"] for d in storage.list_datasets(second)] == ["kept"]
    second.close()


def test_connection_refuses_other_threads(file_db: Database) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            storage.list_datasets(file_db)
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            errors.append(error)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.ProgrammingError)


def test_import_loads_no_qt_torch_or_engine() -> None:
    code = ("import json, sys, storage; print(json.dumps(sorted({m.split('.')[0] "
            "for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert "storage" in loaded
    assert not loaded & {"PySide6", "torch", "engine", "gui", "transformers", "pyqtgraph"}
