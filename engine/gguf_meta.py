"""Read GGUF metadata and rewrite it so every export carries its chat format (K3, K5).

llama.cpp's converter takes the chat template from ``tokenizer_config.json`` and only the EOS
id; an end-of-turn token (Gemma ``<end_of_turn>``, ChatML ``<|im_end|>``) that also ends
generation is not written. We set ``tokenizer.ggml.eot_token_id`` (and ``eom`` for a third end
id) and record the full list under ``tunesmith.end_token_ids``. The rewrite copies the tensors
unchanged (see :mod:`engine.gguf_layout`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.gguf_layout import encode_kv, read_layout
from engine.progress import Progress, Reporter

KEY_TEMPLATE = "tokenizer.chat_template"
KEY_EOS = "tokenizer.ggml.eos_token_id"
KEY_EOT = "tokenizer.ggml.eot_token_id"
KEY_EOM = "tokenizer.ggml.eom_token_id"
KEY_PAD = "tokenizer.ggml.padding_token_id"
KEY_BOS = "tokenizer.ggml.bos_token_id"
KEY_END_IDS = "tunesmith.end_token_ids"
_READ_KEYS = (KEY_TEMPLATE, KEY_EOS, KEY_EOT, KEY_EOM, KEY_PAD, KEY_BOS, KEY_END_IDS,
              "general.architecture", "general.name", "general.file_type", "tokenizer.ggml.model",
              "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token")


@dataclass(frozen=True)
class GgufSummary:
    """Selected metadata and the tensor table of a GGUF file.

    Attributes:
        metadata: values of the keys in ``_READ_KEYS`` that the file has.
        tensors: ``(name, ggml type name, ne)`` per tensor; ``ne[0]`` is the row length.
    """

    metadata: dict[str, Any]
    tensors: list[tuple[str, str, list[int]]]


def read_summary(path: Path) -> GgufSummary:
    """Read the chat-format metadata and the tensor table of a GGUF file (no tensor data).

    Raises:
        ExportError: the file is not a GGUF file.
    """
    from gguf import GGMLQuantizationType

    layout = read_layout(path, _READ_KEYS)
    tensors = [(name, GGMLQuantizationType(kind).name, ne) for name, kind, ne in layout.tensors]
    return GgufSummary(layout.values, tensors)


def wanted_metadata(template: str, special: dict[str, Any]) -> dict[str, Any]:
    """The chat-format keys an export must carry: template, EOS/EOT/EOM, pad, all end ids."""
    ends = [i for i in special["end_ids"] if i is not None]
    extra = [i for i in ends if i != special["eos"]]
    wanted = {KEY_TEMPLATE: template, KEY_EOS: special["eos"], KEY_END_IDS: ends}
    if special.get("eot") is not None and special["eot"] != special["eos"]:
        extra = [special["eot"], *[i for i in extra if i != special["eot"]]]
    for key, value in zip((KEY_EOT, KEY_EOM), extra):
        wanted[key] = value
    if special.get("pad") is not None:
        wanted[KEY_PAD] = special["pad"]
    return wanted


def missing_metadata(summary: GgufSummary, wanted: dict[str, Any]) -> list[str]:
    """Keys of ``wanted`` whose value the file lacks or holds differently."""
    have = summary.metadata
    return [k for k, v in wanted.items()
            if (list(have.get(k) or []) if isinstance(v, list) else have.get(k)) != v]


def rewrite_metadata(src: Path, dst: Path, updates: dict[str, Any], report: Reporter,
                     check: Callable[[], None], chunk_bytes: int = 16 << 20) -> None:
    """Copy GGUF ``src`` to ``dst`` with the keys in ``updates`` set (uint32, uint32 list or str).

    Unchanged entries, the tensor table and the tensor data are copied byte for byte; tensor
    offsets are relative to the data section, so only the alignment padding is recomputed.

    Raises:
        ExportError: ``src`` is not a GGUF file.
    """
    layout = read_layout(src, ())
    kept = [span for key, span in layout.kv_spans if key not in updates]
    header = struct.pack("<4sIQQ", b"GGUF", layout.version, len(layout.tensors),
                         len(kept) + len(updates))
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(header)
        for start, end in kept:
            fout.write(_read_at(fin, start, end - start))
        fout.write(b"".join(encode_kv(k, v) for k, v in updates.items()))
        fout.write(_read_at(fin, *layout.tensor_info_span))
        fout.write(b"\0" * (-fout.tell() % layout.alignment))
        _copy_data(fin, fout, layout.data_offset, report, check, chunk_bytes)


def _read_at(handle: Any, start: int, size: int) -> bytes:
    handle.seek(start)
    return handle.read(size)


def _copy_data(fin: Any, fout: Any, offset: int, report: Reporter, check: Callable[[], None],
               chunk_bytes: int) -> None:
    total = os.fstat(fin.fileno()).st_size - offset
    fin.seek(offset)
    done = 0
    for block in iter(lambda: fin.read(chunk_bytes), b""):
        check()
        fout.write(block)
        done += len(block)
        report(Progress("metadata", done >> 20, total >> 20, message="copying tensors (MiB)"))
