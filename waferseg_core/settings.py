"""User preferences: a typed object saved as JSON in the user data folder.

Qt's QSettings keeps only window state; everything a user chooses lives here so that the CLI,
the app and tests see the same values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from waferseg_core.errors import InvalidInputError


@dataclass
class Settings:
    """Preferences.

    Attributes:
        store_url: Store to open (empty: ``WAFERSEG_STORE`` or the local SQLite file).
        model_path: ONNX model to use (empty: the shipped model).
        brush_radius: Die brush and eraser radius, in dies.
        overlay_opacity: 0-1.
    """

    store_url: str = ""
    model_path: str = ""
    brush_radius: float = 1.0
    overlay_opacity: float = 0.55

    def validate(self) -> None:
        """Check ranges.

        Raises:
            InvalidInputError: A value is out of range.
        """
        if not 0.5 <= self.brush_radius <= 50:
            raise InvalidInputError(f"brush radius must be 0.5-50 dies, found {self.brush_radius}")
        if not 0.0 <= self.overlay_opacity <= 1.0:
            raise InvalidInputError(f"overlay opacity must be 0-1, found {self.overlay_opacity}")


def settings_path() -> Path:
    """``settings.json`` in the user data folder."""
    from waferseg_core.demo import data_dir

    return data_dir() / "settings.json"


def load(path: Path | None = None) -> Settings:
    """The saved settings (defaults for anything missing; a broken file gives defaults)."""
    p = path or settings_path()
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    known = {f.name for f in fields(Settings)}
    s = (
        Settings(**{k: v for k, v in raw.items() if k in known})
        if isinstance(raw, dict)
        else Settings()
    )
    try:
        s.validate()
    except InvalidInputError:
        return Settings()
    return s


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings (validated first) atomically."""
    settings.validate()
    p = path or settings_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=1), encoding="utf-8")
    tmp.replace(p)
    return p
