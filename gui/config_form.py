"""A form generated from a frozen config dataclass: one editor per field, help as tooltip.

Field kinds come from the declared type and ``metadata["choices"]``: a closed set becomes a
combo box, ``bool`` a check box, anything else a line edit parsed by the annotation
(``int``, ``float``, ``... | None`` where empty means ``None``, tuples as comma lists).
Validation is the config's own ``__post_init__``: its :class:`ConfigError` is shown inline
under the field it names, so nothing starts with a bad value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit,
                               QVBoxLayout, QWidget)

from engine.errors import ConfigError


def _parse(text: str, annotation: str, name: str) -> Any:
    """Parse editor text by the field's (string) annotation."""
    text = text.strip()
    if text == "" and "None" in annotation:
        return None
    kinds = [k.strip() for k in annotation.replace("None", "").split("|") if k.strip()]
    if kinds and kinds[0] == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number; got {text!r}") from None
    if kinds and kinds[0] == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number; got {text!r}") from None
    if any(k.startswith("tuple") for k in kinds) and "," in text:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def field_named_in(message: str, names: list[str]) -> str | None:
    """The field a ConfigError message names: the earliest mention, longest name on ties."""
    found = [(message.find(n), -len(n), n) for n in names if n in message]
    return min(found)[2] if found else None


class ConfigForm(QWidget):
    """Editors for every field of ``config_cls``; :meth:`build` validates and returns a config."""

    def __init__(self, config_cls: type, basic: tuple[str, ...] = (),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config_cls = config_cls
        self.fields = {f.name: f for f in dataclasses.fields(config_cls)}
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        names = list(self.fields)
        basic_names = [n for n in names if n in basic] if basic else names
        advanced = [n for n in names if n not in basic_names]
        layout.addWidget(self._group("Settings", basic_names))
        if advanced:
            self.advanced = self._group("Advanced", advanced)
            self.advanced.setCheckable(True)
            self.advanced.setChecked(False)
            self.advanced.toggled.connect(self._on_advanced_toggled)
            self._on_advanced_toggled(False)
            layout.addWidget(self.advanced)
        self.reset()

    def _group(self, title: str, names: list[str]) -> QGroupBox:
        box = QGroupBox(title)
        body = QWidget(objectName="groupBody")
        form = QFormLayout(body)
        form.setContentsMargins(0, 0, 0, 0)
        QVBoxLayout(box).addWidget(body)
        for name in names:
            editor = self._editor(self.fields[name])
            error = QLabel()
            error.setProperty("role", "error")
            error.setWordWrap(True)
            error.hide()
            self.editors[name], self.errors[name] = editor, error
            caption = QLabel(name.replace("_", " "))
            caption.setToolTip(editor.toolTip())
            form.addRow(caption, editor)
            form.addRow("", error)
        return box

    def _on_advanced_toggled(self, on: bool) -> None:
        self.advanced.findChild(QWidget, "groupBody").setVisible(on)
        self.advanced.setFlat(not on)
        # Collapsed: just the check box and title; the frame's empty margins would remain.
        self.advanced.setMaximumHeight(16777215 if on else
                                       self.advanced.fontMetrics().height() + 6)

    def _editor(self, field: dataclasses.Field) -> QWidget:
        choices = field.metadata.get("choices")
        if choices:
            editor: QWidget = QComboBox()
            editor.addItems([str(c) for c in choices])
        elif str(field.type) == "bool":
            editor = QCheckBox()
        else:
            editor = QLineEdit()
        editor.setObjectName(f"field_{field.name}")
        editor.setToolTip(field.metadata.get("help", ""))
        return editor

    def _default(self, field: dataclasses.Field) -> Any:
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            return field.default_factory()  # type: ignore[misc]
        return None

    def reset(self) -> None:
        """Put every field back to its default."""
        self.set_values({name: self._default(f) for name, f in self.fields.items()})

    def set_values(self, values: dict[str, Any]) -> None:
        """Set the editors of the fields in ``values`` (unknown keys are ignored)."""
        for name, value in values.items():
            editor = self.editors.get(name)
            if isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            elif isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, QLineEdit):
                editor.setText(_show(value))

    def raw_values(self) -> dict[str, Any]:
        """Parsed editor values; raises ConfigError naming the first unparsable field."""
        values = {}
        for name, editor in self.editors.items():
            if isinstance(editor, QComboBox):
                values[name] = editor.currentText()
            elif isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            else:
                values[name] = _parse(editor.text(), str(self.fields[name].type), name)
        return values

    def build(self) -> Any | None:
        """The validated config, or ``None`` after showing the error under its field."""
        self.clear_errors()
        try:
            return self.config_cls(**self.raw_values())
        except ConfigError as exc:
            self.show_error(str(exc))
            return None

    def raw_config(self) -> Any | None:
        """The config if the form is valid, else ``None`` (no errors shown)."""
        try:
            return self.config_cls(**self.raw_values())
        except ConfigError:
            return None

    def show_error(self, message: str) -> None:
        """Show ``message`` under the field it names (or under the first field)."""
        name = field_named_in(message, list(self.fields)) or next(iter(self.fields))
        self.errors[name].setText(message)
        self.errors[name].show()
        self.editors[name].setStyleSheet("border: 1px solid #dc2626;")
        if hasattr(self, "advanced") and self.advanced.isAncestorOf(self.editors[name]):
            self.advanced.setChecked(True)  # an error in a hidden field must be visible

    def clear_errors(self) -> None:
        """Hide every inline error."""
        for name, error in self.errors.items():
            error.clear()
            error.hide()
            self.editors[name].setStyleSheet("")
