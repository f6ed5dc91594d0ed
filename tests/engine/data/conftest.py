"""Fixtures for dataset import tests: a helper that writes exact bytes to a temp file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture()
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write ``content`` to ``tmp_path / name``; text is encoded as UTF-8 with no newline change."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write
