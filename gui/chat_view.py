"""Chat building blocks: the transcript view and the chat-lane model cache.

``ChatModels`` is touched only by jobs on the chat lane (one thread), because a llama.cpp
model must be used from the thread that loaded it; the GUI thread only submits jobs.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QTextBrowser, QWidget

from gui.services import stream_text

ROLE_STYLE = {"user": ("You", "#3b82f6"), "assistant": ("Assistant", "#10b981"),
              "system": ("System", "#8a8f98")}
# Streaming re-renders the transcript at most every RENDER_MS milliseconds.
RENDER_MS = 50
# Text pieces are sent to the GUI thread in batches at most this often: one queued signal per
# token would cost the GUI thread a GIL hand-over per token (hundreds per second on a GPU).
BATCH_SECONDS = 0.04


class ChatModels:
    """Open chat models by path; used only on the chat lane's single thread.

    A LoRA adapter GGUF is switched on the loaded base (``ChatModel.set_adapter``), so changing
    adapters never reloads the base model.
    """

    def __init__(self, open_chat: Callable[..., Any]) -> None:
        self._open = open_chat
        self._models: dict[str, Any] = {}
        self._adapters: dict[str, str | None] = {}

    def get(self, path: Path, chat_template: str | None = None, adapter: str | None = None) -> Any:
        """The loaded model for ``path`` (loading it on first use) with ``adapter`` applied.

        Args:
            path: the GGUF file (the base model when ``adapter`` is given).
            chat_template: a template name or Jinja text; ``None`` uses the GGUF's own.
            adapter: a LoRA adapter GGUF to apply on top, or ``None`` for the model alone.
        """
        key = f"{path}\0{chat_template}"
        if key not in self._models:
            self._models[key] = self._open(str(path), chat_template=chat_template)
            self._adapters[key] = None
        if self._adapters[key] != adapter:
            self._models[key].set_adapter(adapter)
            self._adapters[key] = adapter
        return self._models[key]

    def close_all(self) -> None:
        """Free every model's native memory."""
        for model in self._models.values():
            model.close()
        self._models.clear()
        self._adapters.clear()


def stream_reply(models: ChatModels, path: Path, template: str | None,
                 messages: list[dict[str, str]], sampling: Any, report: Any, cancel: Any,
                 adapter: str | None = None) -> str:
    """Job body: stream one reply; new text is reported as ``token`` progress events.

    Each event's ``message`` holds the text since the previous event (pieces are batched, at
    most one event per :data:`BATCH_SECONDS`) and ``step`` the pieces received so far.
    """
    from engine.progress import Progress

    pieces: list[str] = []
    sent, last = 0, time.monotonic()
    for text in stream_text(models.get(path, template, adapter), messages, sampling, cancel):
        pieces.append(text)
        if time.monotonic() - last >= BATCH_SECONDS:
            report(Progress("token", len(pieces), message="".join(pieces[sent:])))
            sent, last = len(pieces), time.monotonic()
    if sent < len(pieces):
        report(Progress("token", len(pieces), message="".join(pieces[sent:])))
    return "".join(pieces)


class Transcript(QTextBrowser):
    """Renders a list of messages as simple bubbles; the last reply can grow while streaming."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenExternalLinks(False)
        self.messages: list[dict[str, str]] = []
        self.title = ""
        self._timer = QTimer(self, singleShot=True, interval=RENDER_MS)
        self._timer.timeout.connect(self.render)

    def set_messages(self, messages: list[dict[str, str]], title: str = "") -> None:
        """Show ``messages`` now."""
        self.messages = [dict(m) for m in messages]
        self.title = title or self.title
        self.render()

    def append_text(self, text: str) -> None:
        """Add streamed text to the last (assistant) message; redraw soon."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            self.messages.append({"role": "assistant", "content": ""})
        self.messages[-1]["content"] += text
        if not self._timer.isActive():
            self._timer.start()

    def render(self) -> None:
        """Redraw the whole transcript and scroll to the end."""
        parts = [f"<p style='color:#8a8f98'><b>{html.escape(self.title)}</b></p>"] if self.title \
            else []
        for message in self.messages:
            name, colour = ROLE_STYLE.get(message["role"], (message["role"], "#8a8f98"))
            body = html.escape(message["content"]).replace("\n", "<br>") or "…"
            parts.append(f"<p style='margin:10px 4px 2px 4px'><b style='color:{colour}'>{name}</b>"
                         f"</p><p style='margin:0 4px 8px 4px'>{body}</p>")
        self.setHtml("".join(parts))
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
