"""Export verification: the pass/warn/fail judgement (fast) and deliberately broken exports of
the real Gemma 3 270M that the report must catch (integration)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.verify import VerificationReport, quantization_report
from engine.verify_checks import (Check, VerifyThresholds, check_bos_count, check_kl,
                                  check_perplexity, check_special_tokens, check_stopping,
                                  check_template, check_top1, worst)
from tests.engine.test_evaluate import GEMMA_ROWS

# ---- fast: the judgement on hand-picked numbers ------------------------------------------------


def test_top1_thresholds_depend_on_quant() -> None:
    limits = VerifyThresholds()
    assert check_top1(0.95, "q8_0", limits).status == "pass"
    assert check_top1(0.95, "f16", limits).status == "warn"   # f16 must agree on >= 0.99
    assert check_top1(0.4, "q4_k_m", limits).status == "fail"
    assert check_top1(0.85, "iq2_xs", limits).status == "pass"  # unknown type: q4_k_m row


def test_kl_fails_beyond_factor() -> None:
    limits = VerifyThresholds()
    assert check_kl(0.005, "q8_0", limits).status == "pass"
    assert check_kl(0.05, "q8_0", limits).status == "warn"
    assert check_kl(0.5, "q8_0", limits).status == "fail"  # > 0.03 * 10


def test_perplexity_ratio_and_absurd_flag() -> None:
    limits = VerifyThresholds()
    assert check_perplexity(20.0, 21.0, False, limits).status == "pass"
    assert check_perplexity(20.0, 25.0, False, limits).status == "warn"
    assert check_perplexity(20.0, 12.0, False, limits).status == "fail"  # ratio 1.67 either way
    assert check_perplexity(20.0, 20.0, True, limits).status == "fail"


def test_stopping_share() -> None:
    limits = VerifyThresholds()
    assert check_stopping(4, 4, 64, limits).status == "pass"
    assert check_stopping(2, 4, 64, limits).status == "warn"
    assert check_stopping(0, 4, 64, limits).status == "fail"


# Hand truth table (reference stops? x GGUF stops?) -> status; 8 rows, stop_pass 0.75
# (6 of 8), stop_fail 0.25 (2 of 8).
@pytest.mark.parametrize("reference, gguf, status, words", [
    (8, 8, "pass", "ended by themselves"),
    (8, 0, "fail", "the export broke stopping"),
    (8, 3, "warn", "the export broke stopping"),
    (0, 8, "pass", "ended by themselves"),
    (0, 0, "warn", "training issue, not the export"),
    (5, 1, "warn", "training issue, not the export"),  # 5 of 8 < 0.75: the reference rambles too
    (None, 0, "fail", "may ramble"),
])
def test_stopping_blames_the_export_only_when_the_reference_stops(reference, gguf, status,
                                                                  words) -> None:
    check = check_stopping(gguf, 8, 32, VerifyThresholds(), reference)
    assert (check.status, check.value) == (status, gguf / 8)
    assert words in check.explanation


def test_compare_logprobs_hand_values() -> None:
    import math

    import torch

    from engine.verify import compare_logprobs

    # p = (0.5, 0.5), q = (0.25, 0.75) -> KL = 0.5 ln 2 + 0.5 ln(2/3); argmax 0 vs 1.
    p = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    q = torch.log(torch.tensor([0.25, 0.75], dtype=torch.float64))
    same = torch.tensor([3.0, 1.0, -7.0])  # padded vocabulary: only 2 ids shared
    top1, kl = compare_logprobs([p, same], [q, same[:2]])
    assert top1 == 0.5  # row 1: argmax 0 vs 1 (tie broken to 0); row 2 identical
    assert kl == pytest.approx((0.5 * math.log(2) + 0.5 * math.log(2 / 3)) / 2, rel=1e-9)
    with pytest.raises(Exception, match="cannot compare"):
        compare_logprobs([p], [])


def test_report_saved_atomically_beside_the_file_and_read_back(tmp_path: Path) -> None:
    from engine.verify_merged import load_report, report_from_dict, report_path, save_report

    target = tmp_path / "m-q8_0.gguf"
    assert load_report(target) is None
    report = VerificationReport(str(target), "q8_0", 10, [Check("a", "fail", float("nan"), "t", "e")],
                                {"mean_kl": 0.5})
    written = save_report(report, target)
    assert written == tmp_path / "m-q8_0.gguf.verify.json" == report_path(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-q8_0.gguf.verify.json"]
    data = load_report(target)
    assert data["overall"] == "fail" and data["checks"][0]["value"] is None
    again = report_from_dict(data)
    assert (again.overall, again.quant, again.metrics) == ("fail", "q8_0", {"mean_kl": 0.5})


def test_special_tokens_compared_with_reference() -> None:
    gguf = {"bos_id": 2, "eos_id": 1, "eot_id": 106, "eog_ids": [1, 106]}
    ok = check_special_tokens(gguf, {"bos_id": 2, "eos_id": 1, "end_ids": [1, 106]})
    assert [c.status for c in ok] == ["pass", "pass", "pass"]
    bad = check_special_tokens({**gguf, "eos_id": 7, "eog_ids": [7]},
                               {"bos_id": 2, "eos_id": 1, "end_ids": [1, 106]})
    assert [(c.name, c.status) for c in bad] == [("eos_id", "fail"), ("bos_id", "pass"),
                                                 ("end_ids", "fail")]
    assert "[1, 106]" in bad[2].explanation


def test_template_and_bos_checks() -> None:
    assert check_template(None, "x").status == "fail"
    assert check_template("a", "b").status == "warn"
    assert check_template("{{ x }}\n", "{{ x }}").status == "pass"
    assert check_bos_count([1, 1], True).status == "pass"
    assert check_bos_count([1, 2], True).status == "fail"  # C14: doubled BOS
    assert check_bos_count([0], False).status == "pass"


def test_thresholds_validated() -> None:
    with pytest.raises(ConfigError, match="stop_pass"):
        VerifyThresholds(stop_pass=1.5)
    with pytest.raises(ConfigError, match="q4_k_m"):
        VerifyThresholds(kl_pass={"f16": 0.001})


def test_report_overall_dict_and_side_by_side() -> None:
    checks = [Check("a", "pass", 1.0, "t", "e"), Check("b", "warn", {"ratio": float("inf")}, "t", "e")]
    report = VerificationReport("/x/m-q8_0.gguf", "q8_0", 10, checks, {"top1_agreement": 1.0})
    assert worst([]) == "pass" and report.overall == "warn"
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["overall"] == "warn" and data["checks"][1]["name"] == "b"
    assert data["checks"][1]["value"] == {"ratio": None}
    failing = VerificationReport("/x/m-q4.gguf", "q4_k_m", 5, [Check("c", "fail", 0, "t", "e")], {})
    rows = quantization_report([report, failing])
    assert [(r["file"], r["overall"], r["failed"]) for r in rows] == [
        ("m-q8_0.gguf", "warn", []), ("m-q4.gguf", "fail", ["c"])]
    assert rows[0]["top1_agreement"] == 1.0 and rows[1]["mean_kl"] is None
    with pytest.raises(KeyError):
        report.check("missing")


# ---- integration: a real q8_0 export of Gemma 3 270M, intact and broken -------------------------

# Three rows, one with a system turn (the same rows test_evaluate scores).
ROWS = GEMMA_ROWS
MAX_NEW = 16


@pytest.fixture(scope="module")
def export(gemma_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(q8_0 GGUF, reference outputs) shared by the integration tests."""
    pytest.importorskip("llama_cpp")
    from engine.export import export_gguf
    from engine.templates import TEMPLATES
    from engine.verify import reference_run

    out = tmp_path_factory.mktemp("verify") / "gemma-q8_0.gguf"
    result = export_gguf(gemma_hf_dir, out, "q8_0", chat_template=TEMPLATES["gemma"])
    return result.path, reference_run(gemma_hf_dir, ROWS, template="gemma")


def _verify(path: Path, gemma_hf_dir: Path, reference) -> VerificationReport:
    from engine.verify import verify_export

    return verify_export(path, reference_dir=gemma_hf_dir, rows=ROWS, reference=reference,
                         max_new_tokens=MAX_NEW)


def _copy_without_key(src: Path, dst: Path, key: str) -> None:
    """Copy a GGUF dropping one metadata entry (same layout arithmetic as rewrite_metadata)."""
    from engine.gguf_layout import read_layout

    layout = read_layout(src, ())
    kept = [span for name, span in layout.kv_spans if name != key]
    assert len(kept) == len(layout.kv_spans) - 1
    data = src.read_bytes()
    head = struct.pack("<4sIQQ", b"GGUF", layout.version, len(layout.tensors), len(kept))
    body = head + b"".join(data[a:b] for a, b in kept)
    start, size = layout.tensor_info_span
    body += data[start:start + size]
    body += b"\0" * (-len(body) % layout.alignment)
    dst.write_bytes(body + data[layout.data_offset:])


def _tensor_offset(path: Path, wanted: str) -> tuple[int, list[int], int]:
    """(absolute data offset, ne, ggml type) of one tensor, from the GGUF tensor table."""
    from engine.gguf_layout import read_layout

    layout = read_layout(path, ())
    start, size = layout.tensor_info_span
    with open(path, "rb") as handle:
        handle.seek(start)
        table = handle.read(size)
    pos = 0
    while pos < len(table):
        (n,) = struct.unpack_from("<Q", table, pos)
        name = table[pos + 8:pos + 8 + n].decode()
        pos += 8 + n
        (dims,) = struct.unpack_from("<I", table, pos)
        ne = list(struct.unpack_from(f"<{dims}Q", table, pos + 4))
        kind, offset = struct.unpack_from("<IQ", table, pos + 4 + 8 * dims)
        pos += 4 + 8 * dims + 12
        if name == wanted:
            return layout.data_offset + offset, ne, kind
    raise AssertionError(f"no tensor {wanted}")


@pytest.mark.integration
def test_intact_export_passes(export, gemma_hf_dir: Path) -> None:
    path, reference = export
    report = _verify(path, gemma_hf_dir, reference)
    statuses = {c.name: c.status for c in report.checks}
    print(json.dumps(report.metrics, default=str))  # the measured numbers, for the record
    assert report.quant == "q8_0"
    for name in ("top1_agreement", "mean_kl", "perplexity", "chat_template", "eos_id", "bos_id",
                 "end_ids", "bos_count", "prompt_tokens"):
        assert statuses[name] == "pass", report.check(name)
    # Gemma 3: BOS 2, EOS 1, <end_of_turn> 106 (tokenizer.json of google/gemma-3-270m).
    assert (report.metrics["bos_id"], report.metrics["eos_id"], report.metrics["eot_id"]) == (2, 1, 106)
    assert report.bytes == path.stat().st_size
    assert report.metrics["tokens_per_second"] > 0


@pytest.mark.integration
def test_removed_template_fails(export, gemma_hf_dir: Path, tmp_path: Path) -> None:
    from engine.gguf_meta import KEY_TEMPLATE

    path, reference = export
    broken = tmp_path / "no-template.gguf"
    _copy_without_key(path, broken, KEY_TEMPLATE)
    report = _verify(broken, gemma_hf_dir, reference)
    assert report.check("chat_template").status == "fail" and report.overall == "fail"
    assert report.check("top1_agreement").status == "pass"  # the weights are intact


@pytest.mark.integration
def test_changed_eos_id_fails(export, gemma_hf_dir: Path, tmp_path: Path) -> None:
    from engine.gguf_meta import KEY_EOS
    from engine.progress import ignore_progress

    from engine.gguf_meta import rewrite_metadata

    path, reference = export
    broken = tmp_path / "eos.gguf"
    rewrite_metadata(path, broken, {KEY_EOS: 3}, ignore_progress, lambda: None)
    report = _verify(broken, gemma_hf_dir, reference)
    assert report.check("eos_id").status == "fail" and report.check("eos_id").value == 3
    assert report.overall == "fail"


@pytest.mark.integration
def test_perturbed_tensor_fails(export, gemma_hf_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    path, reference = export
    broken = tmp_path / "perturbed.gguf"
    shutil.copyfile(path, broken)
    offset, ne, kind = _tensor_offset(broken, "output_norm.weight")
    assert kind == 0  # F32: norms stay 32-bit in every export type
    with open(broken, "r+b") as handle:
        handle.seek(offset)
        weights = np.frombuffer(handle.read(4 * ne[0]), dtype="<f4")
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=ne[0]).astype("<f4")
        handle.seek(offset)
        handle.write((weights * signs * 4).tobytes())
    report = _verify(broken, gemma_hf_dir, reference)
    print(json.dumps(report.metrics, default=str))
    assert report.check("mean_kl").status == "fail"
    assert report.check("top1_agreement").status in ("warn", "fail")
    assert report.check("chat_template").status == "pass"  # metadata untouched


@pytest.mark.parametrize("file_type, expected", [(15, "q4_k_m"), (7, "q8_0"), (1, "f16"),
                                                 (0, "f32"), (None, "unknown")])
def test_file_quant_from_metadata(tmp_path: Path, file_type: int | None, expected: str) -> None:
    from engine.gguf_layout import encode_kv
    from engine.verify import file_quant

    # File types from llama.cpp's llama.h (LLAMA_FTYPE_MOSTLY_Q4_K_M = 15, ..._Q8_0 = 7).
    kvs = [] if file_type is None else [encode_kv("general.file_type", file_type)]
    path = tmp_path / "header-only.gguf"
    path.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)) + b"".join(kvs))
    assert file_quant(path) == expected


def test_limits_floor_from_the_merged_dtype() -> None:
    """Measured on the CLI chain (3-step Gemma run, bf16 merge): the f16 GGUF's mean KL against
    the fp32 adapter model was 0.0045 nats, the merge alone 0.0046: the bf16 merge sets it."""
    limits = VerifyThresholds()
    assert check_kl(0.0045, "f16", limits).status == "warn"
    floored = limits.with_floor("bf16")
    assert check_kl(0.0045, "f16", floored).status == "pass"
    assert floored.limit("kl_pass", "q8_0") == 0.03  # looser rows stay as they are
    assert floored.limit("top1_pass", "f16") == 0.99 and limits.with_floor(None) is limits
    assert limits.with_floor("f32").kl_pass == limits.kl_pass
