"""The conversation editor: system prompt, any number of turns with roles, and tags."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLineEdit,
                               QPlainTextEdit, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from gui.widgets import label

ROLES = ("user", "assistant")


class TurnEditor(QWidget):
    """One message: a role picker, its text and a remove button."""

    def __init__(self, role: str, content: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = QComboBox()
        self.role.addItems(ROLES)
        self.role.setCurrentText(role if role in ROLES else "user")
        self.text = QPlainTextEdit(content)
        self.text.setMinimumHeight(70)
        self.remove = QPushButton("Remove")
        self.remove.setToolTip("Delete this message")
        side = QVBoxLayout()
        side.addWidget(self.role)
        side.addWidget(self.remove)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(side)
        layout.addWidget(self.text, 1)

    def message(self) -> dict[str, str]:
        """This turn as ``{"role", "content"}``."""
        return {"role": self.role.currentText(), "content": self.text.toPlainText()}


class ConversationDialog(QDialog):
    """Edit an example dict; :meth:`example` returns the edited copy."""

    def __init__(self, example: dict[str, Any] | None = None, parent: QWidget | None = None,
                 title: str = "Edit conversation") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 640)
        self._original = dict(example or {"messages": [{"role": "user", "content": ""},
                                                       {"role": "assistant", "content": ""}]})
        messages = list(self._original.get("messages", []))
        system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
        self.system = QPlainTextEdit(system)
        self.system.setPlaceholderText("Optional system prompt")
        self.system.setMaximumHeight(90)
        self.turns: list[TurnEditor] = []
        self._turn_box = QVBoxLayout()
        self._turn_box.addStretch(1)
        for message in messages:
            if message.get("role") != "system":
                self.add_turn(message.get("role", "user"), message.get("content", ""))
        self.tags = QLineEdit(", ".join(self._original.get("tags") or []))
        self.tags.setPlaceholderText("Tags, separated by commas")
        self._build(self._scroll_area())

    def _scroll_area(self) -> QScrollArea:
        inner = QWidget()
        inner.setLayout(self._turn_box)
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setWidget(inner)
        return area

    def _build(self, area: QScrollArea) -> None:
        add = QPushButton("Add message")
        add.clicked.connect(lambda: self.add_turn(self._next_role(), ""))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label("System prompt"))
        layout.addWidget(self.system)
        layout.addWidget(label("Messages"))
        layout.addWidget(area, 1)
        layout.addWidget(add)
        layout.addWidget(label("Tags"))
        layout.addWidget(self.tags)
        layout.addWidget(buttons)

    def add_turn(self, role: str, content: str) -> TurnEditor:
        """Append a message editor."""
        turn = TurnEditor(role, content)
        turn.remove.clicked.connect(lambda: self._remove(turn))
        self.turns.append(turn)
        self._turn_box.insertWidget(self._turn_box.count() - 1, turn)
        return turn

    def _remove(self, turn: TurnEditor) -> None:
        self.turns.remove(turn)
        turn.deleteLater()

    def _next_role(self) -> str:
        return "assistant" if self.turns and self.turns[-1].role.currentText() == "user" else "user"

    def example(self) -> dict[str, Any]:
        """The edited example (source file/line kept from the original)."""
        messages = []
        if self.system.toPlainText().strip():
            messages.append({"role": "system", "content": self.system.toPlainText()})
        messages += [turn.message() for turn in self.turns]
        tags = [t.strip() for t in self.tags.text().split(",") if t.strip()]
        return {**self._original, "messages": messages, "tags": tags}
