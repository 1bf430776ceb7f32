"""Settings and login dialogs."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from waferseg_core.errors import WaferSegError
from waferseg_core.settings import Settings
from waferseg_core.store.service import Store, UserRef


class SettingsDialog(QDialog):
    """Store URL, model, brush radius, opacity, and the list of shortcuts."""

    def __init__(
        self, settings: Settings, actions: list[QAction], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout()
        self.store_url = QLineEdit(settings.store_url)
        self.store_url.setPlaceholderText(
            "default: the local SQLite file (takes effect on restart)"
        )
        self.model_path = QLineEdit(settings.model_path)
        self.model_path.setPlaceholderText("default: the shipped model")
        self.brush = QDoubleSpinBox()
        self.brush.setRange(0.5, 50)
        self.brush.setValue(settings.brush_radius)
        self.opacity = QDoubleSpinBox()
        self.opacity.setRange(0, 1)
        self.opacity.setSingleStep(0.05)
        self.opacity.setValue(settings.overlay_opacity)
        form.addRow("Store URL", self.store_url)
        form.addRow("Model (.onnx)", self.model_path)
        form.addRow("Brush radius (dies)", self.brush)
        form.addRow("Overlay opacity", self.opacity)
        shortcuts = [
            (a.text() or a.toolTip(), a.shortcut().toString())
            for a in actions
            if not a.shortcut().isEmpty()
        ]
        table = QTableWidget(len(shortcuts), 2)
        table.setHorizontalHeaderLabels(["Action", "Key"])
        for i, (name, key) in enumerate(shortcuts):
            table.setItem(i, 0, QTableWidgetItem(name))
            table.setItem(i, 1, QTableWidgetItem(key))
        self.shortcuts = table
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(QLabel("Shortcuts"))
        lay.addWidget(table)
        lay.addWidget(buttons)

    def result_settings(self) -> Settings:
        """The settings as edited."""
        return Settings(
            store_url=self.store_url.text().strip(),
            model_path=self.model_path.text().strip(),
            brush_radius=self.brush.value(),
            overlay_opacity=self.opacity.value(),
        )


class LoginDialog(QDialog):
    """Name and password for a shared store; stays open on a failed login."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Log in")
        self.store = store
        self.user: UserRef | None = None
        self.name = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout()
        form.addRow("User", self.name)
        form.addRow("Password", self.password)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.try_login)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Store: {store.engine.url.render_as_string(hide_password=True)}"))
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def try_login(self) -> None:
        """Check the name and password with the store; close on success."""
        try:
            self.user = self.store.login(self.name.text().strip(), self.password.text())
        except WaferSegError as exc:
            self.error.setText(str(exc))
            self.password.clear()
            return
        self.accept()
