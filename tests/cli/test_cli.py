"""Every CLI subcommand, run in-process through ``main.main`` on the tiny model.

The GGUF paths (export, chat, demo) run on the real Gemma 3 270M in
tests/cli/test_cli_integration.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                  {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
    for a in range(4) for b in range(3)
]


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, dict | list]:
    """Run ``main.py --json --data-dir DATA ARGV``; returns (exit code, parsed JSON stdout)."""
    code = main.main(["--json", "--data-dir", str(data_dir), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture()
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "support.jsonl"
    lines = [json.dumps(c) for c in CONVERSATIONS] + [json.dumps(CONVERSATIONS[0])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_command_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    parser = main.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no API
    for name, sub in commands.items():
        assert f"main.py {name}" in readme, f"README lacks `main.py {name}`"
        actions = getattr(sub, "_subparsers", None)
        if actions is not None:
            for action in actions._group_actions[0].choices:  # noqa: SLF001
                assert f"main.py {name} {action}" in readme, f"README lacks `main.py {name} {action}`"


def test_datasets_commands(capsys, tmp_path, jsonl) -> None:
    data = tmp_path / "d"
    code, result = run(capsys, data, "datasets", "import", str(jsonl), "--name", "sums", "--dedupe")
    assert code == 0
    assert result["format"] == "openai"
    assert result["imported"] == 12 and result["duplicates"] == 1 and result["duplicates_removed"] == 1
    code, listing = run(capsys, data, "datasets", "list")
    assert [d["name"] for d in listing] == ["sums"] and listing[0]["example_count"] == 12
    code, shown = run(capsys, data, "datasets", "show", "sums", "--limit", "2")
    assert len(shown["examples"]) == 2
    out = tmp_path / "out.jsonl"
    code, exported = run(capsys, data, "datasets", "export", "sums", str(out))
    assert code == 0 and len(out.read_text(encoding="utf-8").splitlines()) == 12
    code, _ = run(capsys, data, "datasets", "delete", "sums")
    assert code == 0
    code, listing = run(capsys, data, "datasets", "list")
    assert listing == []


def test_import_refuses_bad_rows_with_line_numbers(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "x", "response": ""}\n',
                   encoding="utf-8")
    code = main.main(["--data-dir", str(tmp_path / "d"), "datasets", "import", str(bad)])
    err = capsys.readouterr().err
    assert code == main.EXIT_BAD_INPUT
    assert "line 2" in err
    code, listing = run(capsys, tmp_path / "d", "datasets", "list")
    assert listing == []  # nothing half-imported


def test_unknown_dataset_exits_not_found(capsys, tmp_path) -> None:
    code = main.main(["--data-dir", str(tmp_path / "d"), "datasets", "show", "nope"])
    assert code == main.EXIT_NOT_FOUND
    assert "nope" in capsys.readouterr().err


def test_bad_training_setting_names_the_field(capsys, tmp_path, jsonl, tiny_model_dir) -> None:
    data = tmp_path / "d"
    run(capsys, data, "datasets", "import", str(jsonl), "--name", "sums")
    code = main.main(["--data-dir", str(data), "train", "--dataset", "sums",
                      "--learning-rate", "-1"])
    assert code == main.EXIT_BAD_INPUT
    assert "learning_rate" in capsys.readouterr().err


def test_models_train_runs_merge_eval_on_tiny_model(capsys, tmp_path, jsonl, tiny_model_dir) -> None:
    data = tmp_path / "d"
    code, model = run(capsys, data, "models", "add", str(tiny_model_dir), "--name", "tiny")
    assert code == 0 and model["architecture"] and model["parameter_count"] > 0
    code, models = run(capsys, data, "models", "list")
    assert [m["name"] for m in models] == ["tiny"]
    code, shown = run(capsys, data, "models", "show", "tiny")
    assert shown["name"] == "tiny"
    run(capsys, data, "datasets", "import", str(jsonl), "--name", "sums")
    code, trained = run(capsys, data, "train", "--dataset", "sums", "--model", "tiny",
                        "--max-steps", "3", "--batch-size", "2", "--max-length", "64",
                        "--eval-every", "2", "--save-every", "2", "--learning-rate", "1e-3")
    assert code == 0, trained
    run_id = trained["run"]["id"]
    assert trained["steps"] == 3 and Path(trained["adapter_dir"]).is_dir()
    code, runs = run(capsys, data, "runs", "list")
    assert runs[0]["id"] == run_id and runs[0]["status"] == "succeeded"
    code, shown = run(capsys, data, "runs", "show", str(run_id))
    losses = [m for m in shown["metrics"] if m["name"] == "loss"]
    assert [m["step"] for m in losses] == [1, 2, 3]
    code, merged = run(capsys, data, "merge", str(run_id))
    assert code == 0 and Path(merged["path"], "config.json").is_file()
    # The merge is verified against the adapter on base on the validation split (1 of the 12
    # conversations): a merge in the tiny model's float32 changes nothing measurable.
    report = merged["verification"]
    assert report["overall"] == "pass", report
    assert [c["name"] for c in report["checks"]] == ["top1_agreement", "mean_kl", "perplexity"]
    assert report["metrics"]["rows"] == 1 and report["metrics"]["mean_kl"] < 1e-6
    assert json.loads(Path(merged["path"] + ".verify.json").read_text()) == report
    code, scores = run(capsys, data, "eval", str(run_id), "--generate", "2")
    assert code == 0
    before, after = scores["results"]["before"], scores["results"]["after"]
    assert before["perplexity"] > 1 and after["perplexity"] > 1
    assert 0 <= after["rouge_l"] <= 1


def test_train_resume_continues_a_cancelled_run(capsys, tmp_path, jsonl, tiny_model_dir, monkeypatch) -> None:
    data = tmp_path / "d"
    run(capsys, data, "models", "add", str(tiny_model_dir), "--name", "tiny")
    run(capsys, data, "datasets", "import", str(jsonl), "--name", "sums")
    original = main.MetricRecorder.__call__

    def cancel_after_step_two(self: main.MetricRecorder, event) -> None:
        original(self, event)
        if event.stage == "train" and event.step >= 2:
            self.app.cancel.cancel()  # what Ctrl-C does

    monkeypatch.setattr(main.MetricRecorder, "__call__", cancel_after_step_two)
    args = ["train", "--dataset", "sums", "--model", "tiny", "--max-steps", "6", "--batch-size", "2",
            "--max-length", "64", "--save-every", "1", "--eval-every", "100"]
    code = main.main(["--data-dir", str(data), *args])
    capsys.readouterr()
    assert code == main.EXIT_CANCELLED
    monkeypatch.setattr(main.MetricRecorder, "__call__", original)
    code, runs = run(capsys, data, "runs", "list")
    first = runs[0]
    assert first["status"] == "cancelled"
    code, resumed = run(capsys, data, "train", "--resume", str(first["id"]))
    assert code == 0 and resumed["steps"] == 6
    assert resumed["run"]["parent_run_id"] == first["id"]
    code, shown = run(capsys, data, "runs", "show", str(resumed["run"]["id"]))
    steps = [m["step"] for m in shown["metrics"] if m["name"] == "loss"]
    assert steps and min(steps) > 1 and max(steps) == 6  # the curve continues, not restarts


def test_export_of_unconvertible_model_fails_in_plain_words(capsys, tmp_path, jsonl, tiny_model_dir) -> None:
    """The tiny model's own BPE pre-tokenizer is unknown to llama.cpp's converter (CASES C22)."""
    data = tmp_path / "d"
    run(capsys, data, "models", "add", str(tiny_model_dir), "--name", "tiny")
    run(capsys, data, "datasets", "import", str(jsonl), "--name", "sums")
    code, trained = run(capsys, data, "train", "--dataset", "sums", "--model", "tiny",
                        "--max-steps", "1", "--batch-size", "2", "--max-length", "64")
    code = main.main(["--data-dir", str(data), "export", str(trained["run"]["id"]), "--quant", "f16"])
    err = capsys.readouterr().err
    assert code == main.EXIT_FAILED
    assert "error:" in err and "Traceback" not in err
    code, runs = run(capsys, data, "runs", "list", "--kind", "export")
    assert runs[0]["status"] == "failed" and runs[0]["error"]


def fake_report(quant: str, overall: str, top1: float, speed: float, size: int) -> dict:
    return {"path": f"/x/model-{quant}.gguf", "quant": quant, "bytes": size, "overall": overall,
            "checks": [{"name": "top1_agreement", "status": overall, "value": top1,
                        "threshold": ">= 0.9 passes", "explanation": "agrees"}],
            "metrics": {"top1_agreement": top1, "mean_kl": 0.004, "perplexity_gguf": 10.5,
                        "perplexity_reference": 10.25, "stop_share": 0.75,
                        "tokens_per_second": speed}}


def test_verdict_table_side_by_side() -> None:
    reports = [fake_report("f16", "pass", 1.0, 20.0, 512 * 2**20),
               fake_report("q4_k_m", "fail", 0.25, 55.5, 256 * 2**20)]
    lines = main.verdict_table(reports).splitlines()
    assert lines[0].split() == ["quant", "MiB", "tokens_per_second", "perplexity_gguf",
                                "perplexity_reference", "top1_agreement", "mean_kl",
                                "stop_share", "overall", "failed"]
    assert lines[1].split() == ["f16", "512", "20", "10.5", "10.25", "1", "0.004", "0.75", "pass", "-"]
    assert lines[2].split() == ["q4_k_m", "256", "55.5", "10.5", "10.25", "0.25", "0.004", "0.75",
                                "fail", "top1_agreement"]
    text = main.check_lines(reports[1])
    assert text.splitlines() == ["  verification: FAIL",
                                 "    [FAIL] top1_agreement: 0.25 (threshold: >= 0.9 passes) - agrees"]


def test_runs_show_lists_stored_reports(capsys, tmp_path) -> None:
    import storage

    data = tmp_path / "d"
    db = storage.open_database(storage.ensure_layout(data))
    run_id = storage.start_run(db, "export", {"quant": "q8_0"})["id"]
    storage.add_artifact(db, run_id, "gguf", "/x/model-q8_0.gguf", bytes=10,
                         meta={"verification": fake_report("q8_0", "warn", 0.875, 40.0, 10)})
    db.conn.close()
    assert main.main(["--data-dir", str(data), "runs", "show", str(run_id)]) == 0
    out = capsys.readouterr().out
    assert "  artifact gguf: /x/model-q8_0.gguf (10 bytes)\n  verification: WARN\n" in out
    assert "[WARN] top1_agreement: 0.875 (threshold: >= 0.9 passes)" in out


def test_export_options_checked_before_any_work(capsys, tmp_path) -> None:
    data = tmp_path / "d"
    code = main.main(["--data-dir", str(data), "export", "1", "--quant", "all", "--out", "x.gguf"])
    assert code == main.EXIT_BAD_INPUT and "--quant all" in capsys.readouterr().err
    args = main.build_parser().parse_args(["export", "1", "--no-verify", "--modelfile"])
    assert (args.no_verify, args.modelfile, args.verify_rows, args.verify_tokens) == (
        True, True, main.VERIFY_ROWS, main.VERIFY_TOKENS)


def test_export_all_prints_the_comparison_and_fails_on_a_failed_check(capsys, tmp_path,
                                                                      monkeypatch) -> None:
    """`export --quant all`: f16, q8_0, q4_k_m in that order, one verdict table (the export
    itself is faked here; the real chain runs in test_cli_integration.py)."""
    import storage
    from types import SimpleNamespace

    calls = []

    def fake_export(app, run_id, quant, out=None, *, modelfile=False):
        calls.append((run_id, quant, out, modelfile))
        run = storage.start_run(app.db, "export", {"quant": quant})
        path = tmp_path / f"m-{quant}.gguf"
        report = fake_report(quant, "fail" if quant == "q4_k_m" else "pass", 1.0, 30.0, 2**20)
        storage.add_artifact(app.db, run["id"], "gguf", path, bytes=2**20,
                             meta={"verification": report})
        return run, SimpleNamespace(path=path, quant=quant, bytes=2**20, sha256="ab",
                                    fallbacks=())

    monkeypatch.setattr(main, "do_export", fake_export)
    code = main.main(["--data-dir", str(tmp_path / "d"), "export", "7", "--quant", "all",
                      "--modelfile"])
    out = capsys.readouterr().out
    assert code == main.EXIT_FAILED
    assert calls == [(7, "f16", None, True), (7, "q8_0", None, True), (7, "q4_k_m", None, True)]
    lines = out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.split()[:2] == ["quant", "MiB"]):]
    assert [line.split()[0] for line in table[1:4]] == ["f16", "q8_0", "q4_k_m"]
    assert [line.split()[-2] for line in table[1:4]] == ["pass", "pass", "fail"]
