"""Chat page: pick a GGUF, system prompt/persona, sampling; streamed replies; saved chats."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QListWidget, QListWidgetItem,
                               QPlainTextEdit, QPushButton, QSplitter, QVBoxLayout, QWidget)

from gui.chat_settings import ChatSettingsPanel
from gui.chat_view import ChatModels, Transcript, stream_reply
from gui.context import AppContext
from gui.errors import show_error
from gui.jobs import Job
from gui.widgets import label


class ChatPage(QWidget):
    """One conversation at a time (optionally answered by a second model side by side)."""

    # Emitted on the GUI thread once a LoRA adapter (path, or None) is applied on the chat lane.
    adapter_switched = Signal(object)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.models = ChatModels(ctx.engine.open_chat)
        self.chat_id: int | None = None
        self.jobs: list[Job] = []
        self.transcript = Transcript()
        self.transcript.setObjectName("transcript")
        self.compare_transcript = Transcript()
        self.compare_transcript.setObjectName("compareTranscript")
        self.compare_transcript.hide()
        self.panel = ChatSettingsPanel(ctx)
        # Short names for the panel's editors (tests and the bench drive them through the page).
        panel = self.panel
        self.model_box, self.compare_box, self.template_box = (panel.model_box, panel.compare_box,
                                                               panel.template_box)
        self.adapter_box = panel.adapter_box
        self.adapter_box.currentIndexChanged.connect(lambda _: self._on_adapter_changed())
        self.system, self.temperature, self.top_p, self.max_tokens = (
            panel.system, panel.temperature, panel.top_p, panel.max_tokens)
        self.compare_box.currentIndexChanged.connect(
            lambda _: self.compare_transcript.setVisible(self.compare_box.currentData() is not None))
        splitter = QSplitter()
        splitter.addWidget(self._build_sidebar())
        splitter.addWidget(self._build_conversation())
        splitter.addWidget(panel)
        splitter.setSizes([230, 700, 300])
        QHBoxLayout(self).addWidget(splitter)
        ctx.hub.artifacts_changed.connect(panel.refresh_models)
        ctx.hub.models_changed.connect(panel.refresh_models)
        ctx.hub.chats_changed.connect(self.refresh_chats)
        panel.refresh_models()
        self.refresh_chats()
        self._set_busy(False)

    # layout ---------------------------------------------------------------------------------
    def _build_sidebar(self) -> QWidget:
        self.chat_list = QListWidget(objectName="chatList")
        self.chat_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.chat_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.chat_list.itemClicked.connect(lambda item: self.open_chat(item.data(Qt.ItemDataRole.UserRole)))
        new = QPushButton("New chat", objectName="newChat")
        new.clicked.connect(self.new_chat)
        delete = QPushButton("Delete chat")
        delete.clicked.connect(self._on_delete_chat)
        widget = QWidget()
        layout = QVBoxLayout(widget)
        layout.addWidget(label("Chat", "title"))
        layout.addWidget(self.chat_list, 1)
        layout.addWidget(new)
        layout.addWidget(delete)
        return widget

    def _build_conversation(self) -> QWidget:
        self.input = QPlainTextEdit(objectName="chatInput", placeholderText="Message (Ctrl+Enter to send)")
        self.input.setMaximumHeight(100)
        self.send_button = QPushButton("Send", objectName="sendButton", shortcut="Ctrl+Return")
        self.send_button.setProperty("primary", True)
        self.stop_button = QPushButton("Stop", objectName="stopButton", shortcut="Escape")
        self.regen_button = QPushButton("Regenerate", objectName="regenButton")
        self.edit_button = QPushButton("Edit last message", objectName="editButton")
        self.save_button = QPushButton("Save to dataset…", objectName="saveToDataset")
        for button, slot in ((self.send_button, self.send), (self.stop_button, self.stop),
                             (self.regen_button, self.regenerate),
                             (self.edit_button, self.edit_last), (self.save_button, self.save_to_dataset)):
            button.clicked.connect(slot)
        buttons = QHBoxLayout()
        for button in (self.send_button, self.stop_button, self.regen_button, self.edit_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        views = QSplitter()
        views.addWidget(self.transcript)
        views.addWidget(self.compare_transcript)
        widget = QWidget()
        layout = QVBoxLayout(widget)
        layout.addWidget(views, 1)
        layout.addWidget(self.input)
        layout.addLayout(buttons)
        return widget

    # models, chats --------------------------------------------------------------------------
    def add_model_path(self, path: str) -> None:
        """Offer ``path`` in the model picker and select it."""
        self.panel.add_model_path(path)

    def refresh_chats(self) -> None:
        """Reload the saved conversation list."""
        self.chat_list.clear()
        for chat in self.ctx.store.chats():
            item = QListWidgetItem(chat["title"] or f"Chat {chat['id']}")
            item.setData(Qt.ItemDataRole.UserRole, chat["id"])
            self.chat_list.addItem(item)

    def new_chat(self) -> None:
        """Start an empty conversation (saved when the first message is sent)."""
        self.chat_id = None
        self.transcript.set_messages([], "")
        self.compare_transcript.set_messages([], "")

    def open_chat(self, chat_id: int) -> None:
        """Show a saved conversation."""
        chat = next((c for c in self.ctx.store.chats() if c["id"] == chat_id), None)
        if chat is None:
            return
        self.chat_id = chat_id
        for row in range(self.chat_list.count()):
            if self.chat_list.item(row).data(Qt.ItemDataRole.UserRole) == chat_id:
                self.chat_list.setCurrentRow(row)
        self.system.setPlainText(chat.get("system_prompt") or "")
        if chat.get("model_path"):
            self.add_model_path(chat["model_path"])
        messages = [{"role": m["role"], "content": m["content"]}
                    for m in self.ctx.store.chat_messages(chat_id) if m["role"] != "system"]
        self.transcript.set_messages(messages, chat["title"])

    def _on_delete_chat(self) -> None:
        if self.chat_id is not None:
            self.ctx.store.delete_chat(self.chat_id)
            self.new_chat()
            self.ctx.hub.chats_changed.emit()

    # sending --------------------------------------------------------------------------------
    def send(self) -> None:
        """Send the input box's text and stream the reply (and the comparison's)."""
        text = self.input.toPlainText().strip()
        if not text or self.jobs or self.model_box.currentData() is None:
            return
        self.input.clear()
        self._ask(self.transcript.messages + [{"role": "user", "content": text}])

    def regenerate(self) -> None:
        """Ask again for the last reply (the old answer stays in the saved chat's history)."""
        messages = list(self.transcript.messages)
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()
        if messages and not self.jobs:
            self._ask(messages, fork=True)

    def edit_last(self) -> None:
        """Put the last user message back into the input box to edit and resend."""
        messages = list(self.transcript.messages)
        while messages and messages[-1]["role"] != "user":
            messages.pop()
        if messages and not self.jobs:
            self.input.setPlainText(messages.pop()["content"])
            self.transcript.set_messages(messages)
            self.chat_id = None  # the edited conversation is saved as a new chat

    def _ask(self, messages: list[dict[str, str]], fork: bool = False) -> None:
        if fork:
            self.chat_id = None
        self._save_messages(messages)
        self.transcript.set_messages(messages)
        self._start_stream(self.transcript, self.model_box.currentData(), messages, save=True)
        if self.compare_box.currentData() is not None:
            self.compare_transcript.set_messages(messages, Path(self.compare_box.currentData()).name)
            self._start_stream(self.compare_transcript, self.compare_box.currentData(), messages)

    def _start_stream(self, view: Transcript, path: str, messages: list[dict[str, str]],
                      save: bool = False) -> None:
        history = ([{"role": "system", "content": self.system.toPlainText()}]
                   if self.system.toPlainText().strip() else []) + messages
        sampling, models, template = self.panel.sampling(), self.models, self.template_box.currentData()
        # The adapter applies to the main model; the comparison shows its model alone.
        adapter = self.adapter_box.currentData() if view is self.transcript else None
        job = self.ctx.runner.submit("Chat", lambda report, cancel: stream_reply(
            models, Path(path), template, history, sampling, report, cancel, adapter), lane="chat")
        view.append_text("")
        job.progress.connect(lambda event: view.append_text(event.message))
        job.succeeded.connect(lambda reply: self._on_reply(view, reply, save))
        job.failed.connect(lambda exc: show_error(self, exc, "get a reply"))
        job.done.connect(lambda: self._on_job_done(job))
        self.jobs.append(job)
        self._set_busy(True)

    def _on_adapter_changed(self) -> None:
        """Apply the chosen adapter on the loaded base now (chat lane), not at the next reply."""
        path, adapter = self.model_box.currentData(), self.adapter_box.currentData()
        if path is None:
            return
        models, template = self.models, self.template_box.currentData()
        job = self.ctx.runner.submit("Switch adapter", lambda report, cancel: models.get(
            Path(path), template, adapter), lane="chat")
        name = Path(adapter).name if adapter else "none"
        job.succeeded.connect(lambda _: self._on_adapter_applied(adapter, name))
        job.failed.connect(lambda exc: show_error(self, exc, "apply the LoRA adapter"))

    def _on_adapter_applied(self, adapter: str | None, name: str) -> None:
        self.ctx.hub.status_message.emit(f"LoRA adapter: {name}")
        self.adapter_switched.emit(adapter)

    def _on_reply(self, view: Transcript, reply: str, save: bool) -> None:
        view.render()
        if save and self.chat_id is not None and reply:
            self.ctx.store.add_chat_message(self.chat_id, "assistant", reply)

    def _on_job_done(self, job: Job) -> None:
        self.jobs.remove(job)
        self._set_busy(bool(self.jobs))

    def stop(self) -> None:
        """Stop every reply being generated."""
        for job in self.jobs:
            job.cancel()

    def _save_messages(self, messages: list[dict[str, str]]) -> None:
        """Store the new user message (creating the chat record on first send)."""
        store = self.ctx.store
        if self.chat_id is None:
            title = messages[0]["content"][:48] if messages else "Chat"
            self.chat_id = store.create_chat(title, self.model_box.currentData(),
                                             self.system.toPlainText())
            for message in messages:
                store.add_chat_message(self.chat_id, message["role"], message["content"])
            self.ctx.hub.chats_changed.emit()
        elif messages and messages[-1]["role"] == "user":
            store.add_chat_message(self.chat_id, "user", messages[-1]["content"])

    def save_to_dataset(self) -> None:
        """Save the conversation (with its system prompt) as a new example in a dataset."""
        datasets = {d["name"]: d["id"] for d in self.ctx.store.datasets()}
        if not datasets or not self.transcript.messages:
            return
        name, ok = QInputDialog.getItem(self, "Save to dataset", "Dataset", list(datasets), 0, False)
        if ok:
            self.save_into(datasets[name])

    def save_into(self, dataset_id: int) -> None:
        """Append the current conversation to dataset ``dataset_id``."""
        system = self.system.toPlainText().strip()
        messages = ([{"role": "system", "content": system}] if system else []) + \
            [m for m in self.transcript.messages if m["content"]]
        try:
            self.ctx.store.add_example(dataset_id, {"messages": messages, "tags": ["from-chat"]})
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, exc, "save the conversation")
            return
        self.ctx.hub.datasets_changed.emit()
        self.ctx.hub.status_message.emit("Saved the conversation as a training example.")

    def _set_busy(self, busy: bool) -> None:
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.regen_button.setEnabled(not busy)
        self.edit_button.setEnabled(not busy)

    def shutdown(self) -> None:
        """Stop replies and free the models on the chat thread (they belong to it)."""
        self.stop()
        models = self.models
        self.ctx.runner.submit("Close chat models", lambda report, cancel: models.close_all(),
                               lane="chat")
