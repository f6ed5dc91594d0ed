"""The dependency rule of docs/ARCHITECTURE.md, checked rather than trusted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_engine_and_storage_load_no_qt_and_not_each_other() -> None:
    engine_mods = _loaded_after("import engine, engine.data, engine.train, engine.chat, "
                                "engine.evaluate, engine.templates, engine.encode")
    storage_mods = _loaded_after("import storage")
    assert not {m for m in engine_mods | storage_mods if m.startswith("PySide6")}
    assert "storage" not in engine_mods
    assert "engine" not in storage_mods


def test_cli_path_is_cheap_and_qt_free() -> None:
    """Building the CLI parser must not load Qt, torch or transformers (fast start-up)."""
    mods = _loaded_after("import main\nmain.build_parser()")
    heavy = {"PySide6", "torch", "transformers", "peft", "llama_cpp"}
    assert not heavy & {m.split(".")[0] for m in mods}


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
