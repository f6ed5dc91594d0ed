"""The main job end to end on the real Gemma 3 270M, through the CLI: a few training steps ->
merge -> q8_0 and f16 GGUF -> llama.cpp answers; the f16 GGUF's next token agrees with the
merged Hugging Face model's (a second runtime as the independent reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, dict]:
    code = main.main(["--json", "--data-dir", str(data_dir), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, gemma_hf_dir: Path) -> dict:
    """`main.py demo` with a few steps and a small held-out set, on the session's Gemma."""
    data = tmp_path_factory.mktemp("cli-integration") / "data"
    assert main.main(["--json", "--data-dir", str(data), "models", "add", str(gemma_hf_dir),
                      "--name", main.BUILTIN_MODEL]) == 0
    code = main.main(["--json", "--data-dir", str(data), "demo", "--max-steps", "3",
                      "--batch-size", "4", "--max-length", "96", "--validation-fraction", "0.02",
                      "--generate", "2"])
    assert code == 0
    return {"data": data}


def test_demo_summary(demo_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    data = demo_run["data"]
    code, runs = run(capsys, data, "runs", "list")
    kinds = {r["kind"]: r for r in runs}
    assert set(kinds) == {"train", "merge", "export", "eval"}
    assert all(r["status"] == "succeeded" for r in runs)
    code, shown = run(capsys, data, "runs", "show", str(kinds["export"]["id"]))
    gguf = [a for a in shown["artifacts"] if a["kind"] == "gguf"][0]
    import hashlib

    digest = hashlib.sha256(Path(gguf["path"]).read_bytes()).hexdigest()
    assert gguf["sha256"] == digest and gguf["bytes"] == Path(gguf["path"]).stat().st_size
    # The export was verified against the adapter model; the report is stored with the artifact
    # and beside the file. An intact q8_0 export of this model must not fail a check (the
    # thresholds' source: engine/verify_checks.py); every check ran on the same rows.
    report = gguf["meta"]["verification"]
    assert json.loads(Path(gguf["path"] + ".verify.json").read_text()) == report
    with capsys.disabled():  # the measured numbers, for the record
        print(f"\nq8_0 verification {report['seconds_total']:.1f} s: " + ", ".join(
            f"{c['name']}={c['status']}" for c in report["checks"]))
    assert report["overall"] != "fail", report["checks"]
    assert {c["name"] for c in report["checks"]} >= {"top1_agreement", "mean_kl", "perplexity",
                                                     "stops", "chat_template", "eos_id"}
    assert Path(gguf["path"]).with_suffix(".md").read_text().count(report["overall"].upper()) >= 1
    code, shown = run(capsys, data, "runs", "show", str(kinds["merge"]["id"]))
    merged = [a for a in shown["artifacts"] if a["kind"] == "merged"][0]["meta"]["verification"]
    assert merged["overall"] == "pass", merged["checks"]  # bf16 rounding of the merge only
    code, shown = run(capsys, data, "runs", "show", str(kinds["eval"]["id"]))
    values = {m["name"]: m["value"] for m in shown["metrics"]}
    assert 1 < values["perplexity_before"] < 1e4 and 1 < values["perplexity_after"] < 1e4
    assert 1 < values["perplexity_gguf"] < 1e4


def test_f16_export_chat_and_next_token_agreement(demo_run: dict, capsys) -> None:
    data = demo_run["data"]
    code, runs = run(capsys, data, "runs", "list", "--kind", "train")
    train_id = runs[0]["id"]
    code, exported = run(capsys, data, "export", str(train_id), "--quant", "f16", "--modelfile")
    assert code == 0
    f16 = Path(exported["path"])
    checks = {c["name"]: c["status"] for c in exported["verification"]["checks"]}
    # f16 reproduces the model: every check passes except, possibly, "stops" (a 3-step model
    # may not have learned to end its turn; that is a warning, never a failure of the export).
    failing = [c for c in exported["verification"]["checks"]
               if c["status"] != "pass" and c["name"] != "stops"]
    assert not failing, failing
    assert checks["stops"] in ("pass", "warn"), exported["verification"]["checks"]
    assert 'PARAMETER stop "<end_of_turn>"' in f16.with_suffix(".Modelfile").read_text()
    with capsys.disabled():
        print(f"\nf16 verification {exported['verification']['seconds_total']:.1f} s: {checks}")
    code, reply = run(capsys, data, "chat", str(f16), "--prompt", "Hello, how are you?",
                      "--temperature", "0", "--max-tokens", "24")
    assert code == 0 and reply["finish_reason"] in ("stop", "length")
    assert "<start_of_turn>" not in reply["reply"] and "<end_of_turn>" not in reply["reply"]

    from engine.evaluate import perplexity_gguf, perplexity_hf
    from engine.replies import next_token_agreement

    code, merges = run(capsys, data, "runs", "list", "--kind", "merge")
    code, shown = run(capsys, data, "runs", "show", str(merges[0]["id"]))
    merged = [a for a in shown["artifacts"] if a["kind"] == "merged"][0]["path"]
    prompts = [[{"role": "user", "content": text}] for text in
               ("Hello", "What is your name?", "Do you like music?", "Tell me a joke.")]
    agreement = next_token_agreement(merged, f16, prompts)
    assert agreement.top1_agreement == 1.0, agreement.per_prompt

    # Perplexity on the run's own held-out rows: transformers on the merged folder vs
    # llama.cpp on the GGUFs converted from it. f16 must match; q8_0 is reported (measured
    # here: +10% on a 3-step run, 0.1% after the demo's 60 steps; see the closing note).
    code, exports = run(capsys, data, "runs", "list", "--kind", "export")
    q8 = [a for a in storage_artifacts(data, exports[-1]["id"]) if a["kind"] == "gguf"][0]["path"]
    q8_agreement = next_token_agreement(merged, q8, prompts)  # reported, not required to be 1
    print(f"q8_0 top-1 agreement {q8_agreement.top1_agreement:.2f}, mean KL {q8_agreement.mean_kl:.2e}")
    assert q8_agreement.top1_agreement >= 0.5, q8_agreement.per_prompt
    val = held_out_rows(data, merges[0]["parent_run_id"])[:8]
    hf = perplexity_hf(merged, val, max_length=96)
    for gguf, tolerance in ((f16, 0.01), (q8, 0.25)):
        gg = perplexity_gguf(gguf, val, max_length=96, tokenizer_dir=merged)
        assert gg.tokens == hf.tokens
        assert abs(gg.perplexity / hf.perplexity - 1) < tolerance, (gguf, gg.perplexity, hf.perplexity)


def storage_artifacts(data: Path, run_id: int) -> list[dict]:
    import storage

    return storage.list_artifacts(storage.open_database(data), run_id)


def held_out_rows(data: Path, train_run_id: int) -> list[dict]:
    """The validation split of a train run, recomputed the way the run made it."""
    import storage
    from engine.data import split_examples

    db = storage.open_database(data)
    train = storage.get_run(db, train_run_id)
    rows = list(storage.iter_examples(db, train["dataset_id"]))
    return split_examples(rows, validation_fraction=train["config"]["validation_fraction"],
                          seed=train["config"]["train"]["seed"])[1]
