"""Runs, metrics, interrupted-run marking, artifacts and base models."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

import storage

MODEL_INFO = {"name": "gemma-3-270m", "path": "/models/gemma", "architecture": "Gemma3ForCausalLM",
              "parameter_count": 268_098_176, "dtype": "bfloat16", "context_length": 32768,
              "chat_template": "{{ messages }}", "special_tokens": {"bos": 2, "eos": [1, 106]},
              "source": "builtin"}


def test_run_life_cycle(db: Database, three: dict[str, Any]) -> None:
    model = storage.register_base_model(db, MODEL_INFO)
    config = {"lora_rank": 8, "learning_rate": 2e-4, "target_modules": ["q_proj", "v_proj"]}
    run = storage.start_run(db, "train", config, base_model_id=model["id"],
                            dataset_id=three["id"])
    assert (run["status"], run["name"], run["config"]) == ("running", f"train {run['id']}", config)
    assert run["dataset_hash"] == three["content_hash"] and run["started"] and not run["ended"]
    done = storage.finish_run(db, run["id"], "succeeded")
    assert done["status"] == "succeeded" and done["ended"] >= done["started"]
    with pytest.raises(storage.Conflict, match="already finished as 'succeeded'"):
        storage.finish_run(db, run["id"], "failed", "boom")
    child = storage.start_run(db, "export", {}, name="gguf", parent_run_id=run["id"],
                              dataset_hash="abc")
    assert (child["parent_run_id"], child["dataset_hash"], child["name"]) == (
        run["id"], "abc", "gguf")


def test_invalid_run_values(db: Database) -> None:
    with pytest.raises(storage.InvalidRecord, match="allowed: train, merge, export, eval"):
        storage.start_run(db, "quantise", {})
    with pytest.raises(storage.InvalidRecord, match="JSON-serialisable"):
        storage.start_run(db, "train", {"path": object()})
    run = storage.start_run(db, "eval", {})
    with pytest.raises(storage.InvalidRecord, match="allowed: succeeded"):
        storage.finish_run(db, run["id"], "running")
    with pytest.raises(storage.NotFound, match="no run with id 999"):
        storage.finish_run(db, 999, "failed")
    with pytest.raises(sqlite3.IntegrityError):
        storage.start_run(db, "merge", {}, base_model_id=12345)


def test_list_runs_filters_newest_first(db: Database) -> None:
    ids = [storage.start_run(db, kind, {})["id"] for kind in ("train", "merge", "train")]
    storage.finish_run(db, ids[0], "failed", "out of memory")
    assert [r["id"] for r in storage.list_runs(db)] == ids[::-1]
    assert [r["id"] for r in storage.list_runs(db, kind="train")] == [ids[2], ids[0]]
    assert [r["id"] for r in storage.list_runs(db, kind="train", status="failed")] == [ids[0]]
    assert len(storage.list_runs(db, limit=1)) == 1
    assert storage.get_run(db, ids[0])["error"] == "out of memory"


def test_mark_interrupted_runs(file_db: Database, tmp_path: Path) -> None:
    killed = storage.start_run(file_db, "train", {})
    finished = storage.start_run(file_db, "merge", {})
    storage.finish_run(file_db, finished["id"], "succeeded")
    file_db.close()  # the "process" dies with the train run still running
    reopened = storage.open_database(tmp_path / "data")
    assert storage.mark_interrupted_runs(reopened) == 1
    after = storage.get_run(reopened, killed["id"])
    assert after["status"] == "interrupted" and after["ended"]
    assert "start it again" in after["error"]
    assert storage.get_run(reopened, finished["id"])["status"] == "succeeded"
    assert storage.mark_interrupted_runs(reopened) == 0
    reopened.close()


def test_metrics(db: Database) -> None:
    run = storage.start_run(db, "train", {})
    written = storage.add_metrics(db, run["id"], [(1, "loss", 2.5), (1, "learning_rate", 1e-4),
                                                  (2, "loss", 2.0), (3, "loss", math.nan)])
    assert written == 4
    assert storage.get_metrics(db, run["id"], "loss") == [
        {"step": 1, "name": "loss", "value": 2.5}, {"step": 2, "name": "loss", "value": 2.0},
        {"step": 3, "name": "loss", "value": None}]
    assert [m["name"] for m in storage.get_metrics(db, run["id"])] == [
        "learning_rate", "loss", "loss", "loss"]
    with pytest.raises(storage.NotFound):
        storage.add_metrics(db, 77, [(1, "loss", 1.0)])


def test_artifacts_and_run_cascade(db: Database, tmp_path: Path) -> None:
    run = storage.start_run(db, "export", {})
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(96))
    digest = storage.file_sha256(gguf)
    assert digest == hashlib.sha256(b"GGUF" + bytes(96)).hexdigest()
    art = storage.add_artifact(db, run["id"], "gguf", gguf, sha256=digest,
                               meta={"quantization": "q4_k_m"})
    assert (art["bytes"], art["path"], art["meta"]) == (100, str(gguf), {"quantization": "q4_k_m"})
    storage.add_artifact(db, run["id"], "report", tmp_path / "missing.json")
    assert [a["kind"] for a in storage.list_artifacts(db, run["id"])] == ["report", "gguf"]
    assert [a["id"] for a in storage.list_artifacts(db, kind="gguf")] == [art["id"]]
    storage.add_metrics(db, run["id"], [(1, "size", 1.0)])
    child = storage.start_run(db, "eval", {}, parent_run_id=run["id"])
    storage.delete_run(db, run["id"])
    assert storage.list_artifacts(db) == [] and storage.get_metrics(db, run["id"]) == []
    assert storage.get_run(db, child["id"])["parent_run_id"] is None
    with pytest.raises(storage.NotFound, match=f"no run with id {run['id']}"):
        storage.delete_run(db, run["id"])


def test_base_models(db: Database) -> None:
    stored = storage.register_base_model(db, MODEL_INFO)
    assert {k: stored[k] for k in MODEL_INFO} == MODEL_INFO
    assert storage.get_base_model(db, stored["id"]) == stored
    with pytest.raises(storage.Conflict, match="already registered"):
        storage.register_base_model(db, MODEL_INFO)
    replaced = storage.register_base_model(db, {**MODEL_INFO, "dtype": "float32"}, replace=True)
    assert (replaced["id"], replaced["dtype"]) == (stored["id"], "float32")
    with pytest.raises(storage.InvalidRecord, match="unknown base model field"):
        storage.register_base_model(db, {"name": "x", "path": "p", "vocab": 3})
    minimal = storage.register_base_model(db, {"name": "a-tiny", "path": Path("/m/tiny")})
    assert (minimal["source"], minimal["special_tokens"], minimal["path"]) == (
        "hf-folder", {}, "/m/tiny")
    assert [m["name"] for m in storage.list_base_models(db)] == ["a-tiny", "gemma-3-270m"]
    run = storage.start_run(db, "train", {}, base_model_id=stored["id"])
    storage.delete_base_model(db, "gemma-3-270m")
    assert storage.get_run(db, run["id"])["base_model_id"] is None
    with pytest.raises(storage.NotFound, match="no base model with name 'gemma-3-270m'"):
        storage.get_base_model(db, "gemma-3-270m")
