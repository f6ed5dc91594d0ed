"""The one place where exceptions become messages a user can read (after Anki's aqt/errors.py).

:func:`show_error` is the only function pages call. It says what failed (the action), why
(the engine's own message, which names the file/line/field) and what to do (advice per error
class), with the traceback behind "Show Details...". :class:`engine.errors.Cancelled` is
silent: cancelling is not an error.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from engine import errors as E

# Advice per error class, most specific first; the engine's message already says the details.
_ADVICE: tuple[tuple[type[BaseException], str], ...] = (
    (E.OutOfMemory, "Lower the batch size or the maximum sequence length, or pick a smaller "
                    "model, then start again."),
    (E.TrainingDiverged, "Lower the learning rate (for example by 10x) and start again."),
    (E.ConfigError, "Correct the highlighted setting and try again."),
    (E.DataError, "Fix the file at the line shown (or skip bad rows) and import it again."),
    (E.ModelLoadError, "Check that the folder holds a complete model (config.json, weights and "
                       "tokenizer files) or pick another model."),
    (E.ExportError, "Check the free disk space and the model's files, then export again."),
    (E.EngineError, "Check the settings and try again."),
    (MemoryError, "Close other programs or pick smaller settings, then try again."),
    (OSError, "Check that the path exists, is readable and the disk has free space."),
)


@dataclass(frozen=True)
class ErrorMessage:
    """The parts of an error message box."""

    title: str
    what: str
    why: str
    todo: str
    details: str


def describe_error(exc: BaseException, action: str) -> ErrorMessage | None:
    """Turn ``exc`` raised while doing ``action`` into message parts; ``None`` for Cancelled.

    Args:
        exc: the exception (its ``__traceback__`` goes into the details).
        action: what the user asked for, as a verb phrase, e.g. ``"import data.jsonl"``.
    """
    if isinstance(exc, E.Cancelled):
        return None
    why = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, E.EngineError):
        why = f"{type(exc).__name__}: {why}"
    todo = next((advice for cls, advice in _ADVICE if isinstance(exc, cls)),
                "This looks like a bug in Tunesmith. Please report it with the details below.")
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorMessage(title="Tunesmith", what=f"Could not {action}.", why=why, todo=todo,
                        details=details)


def show_error(parent: QWidget | None, exc: BaseException, action: str) -> QMessageBox | None:
    """Show ``exc`` as a window-modal message box; return it (``None`` for Cancelled).

    The box is opened with ``open()``, not ``exec()``, so the caller's event loop keeps running
    (jobs continue to report) and tests can inspect and close it.
    """
    message = describe_error(exc, action)
    if message is None:
        return None
    box = QMessageBox(parent)
    box.setObjectName("errorBox")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(message.title)
    box.setText(f"<b>{_escape(message.what)}</b>")
    box.setInformativeText(f"{_escape(message.why)}<br><br>{_escape(message.todo)}")
    box.setDetailedText(message.details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.open()
    return box


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", "<br>"))
