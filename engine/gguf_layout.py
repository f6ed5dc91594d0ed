"""A small, fast reader of the GGUF header (metadata + tensor table), and a KV encoder.

gguf-py's ``GGUFReader`` builds numpy views for every element of every array, which takes tens
of seconds for a 262k-token vocabulary on a laptop CPU; export reads headers several times, so
this module walks the header once with ``struct`` and skips what it does not need.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (version 2 and 3).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Container

from engine.errors import ExportError

# GGUF value types -> struct format of one scalar (8 = string, 9 = array).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
DEFAULT_ALIGNMENT = 32


@dataclass
class GgufLayout:
    """Where things are in a GGUF file.

    Attributes:
        version: GGUF version.
        values: decoded values of the requested keys.
        kv_spans: ``(key, (start, end))`` byte span of each metadata entry, in file order.
        tensors: ``(name, ggml type id, ne)`` per tensor.
        tensor_info_span: ``(start, size)`` of the tensor table.
        alignment: data alignment in bytes.
        data_offset: file offset of the tensor data section.
    """

    version: int
    values: dict[str, Any] = field(default_factory=dict)
    kv_spans: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    tensors: list[tuple[str, int, list[int]]] = field(default_factory=list)
    tensor_info_span: tuple[int, int] = (0, 0)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0


def read_layout(path: Path, keys: Container[str]) -> GgufLayout:
    """Parse the header of GGUF ``path``, decoding the values of ``keys``.

    Raises:
        ExportError: not a GGUF file, or a truncated one.
    """
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _parse(buf, keys)
        except (struct.error, ValueError, KeyError) as exc:
            raise ExportError(f"{path} is not a valid GGUF file ({exc}).") from exc


def _parse(buf: Any, keys: Container[str]) -> GgufLayout:
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    if magic != b"GGUF" or version not in (2, 3):
        raise ValueError(f"magic {magic!r}, version {version}")
    layout, pos = GgufLayout(version), 24
    for _ in range(n_kv):
        start = pos
        key, pos = _string(buf, pos)
        (vtype,) = struct.unpack_from("<I", buf, pos)
        value, pos = _value(buf, pos + 4, vtype, decode=key in keys or key == "general.alignment")
        layout.kv_spans.append((key, (start, pos)))
        if key in keys:
            layout.values[key] = value
        if key == "general.alignment":
            layout.alignment = int(value)
    start = pos
    for _ in range(n_tensors):
        name, pos = _string(buf, pos)
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        ne = list(struct.unpack_from(f"<{n_dims}Q", buf, pos + 4))
        kind, _offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        layout.tensors.append((name, kind, ne))
    layout.tensor_info_span = (start, pos - start)
    layout.data_offset = pos + (-pos % layout.alignment)
    return layout


def _string(buf: Any, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<Q", buf, pos)
    return bytes(buf[pos + 8:pos + 8 + size]).decode("utf-8", "replace"), pos + 8 + size


def _value(buf: Any, pos: int, vtype: int, *, decode: bool) -> tuple[Any, int]:
    if vtype == _STRING:
        if decode:
            return _string(buf, pos)
        (size,) = struct.unpack_from("<Q", buf, pos)
        return None, pos + 8 + size
    if vtype == _ARRAY:
        return _array(buf, pos, decode=decode)
    fmt = _SCALARS[vtype]
    return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)


def _array(buf: Any, pos: int, *, decode: bool) -> tuple[Any, int]:
    etype, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if etype in _SCALARS:
        fmt = _SCALARS[etype]
        width = struct.calcsize(fmt)
        value = list(struct.unpack_from(f"<{count}{fmt[1]}", buf, pos)) if decode else None
        return value, pos + width * count
    items = []
    for _ in range(count):  # strings or nested arrays: walk them
        item, pos = _value(buf, pos, etype, decode=decode)
        items.append(item)
    return (items if decode else None), pos


def encode_kv(key: str, value: Any) -> bytes:
    """One metadata entry: a ``str``, an ``int`` (uint32) or a list of ints (uint32 array)."""
    out = _encode_string(key)
    if isinstance(value, str):
        return out + struct.pack("<I", _STRING) + _encode_string(value)
    if isinstance(value, (list, tuple)):
        return out + struct.pack(f"<IIQ{len(value)}I", _ARRAY, _UINT32, len(value), *map(int, value))
    return out + struct.pack("<II", _UINT32, int(value))


def _encode_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data
