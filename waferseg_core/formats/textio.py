"""Reading text-based wafer files: encoding detection and line numbers for errors."""

from __future__ import annotations

from pathlib import Path

from waferseg_core.errors import WaferFileError


def read_text(path: Path) -> str:
    """The file's text: UTF-8 (BOM stripped) or, failing that, Latin-1.

    Raises:
        WaferFileError: Unreadable, or binary (NUL bytes) where text was expected.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferFileError(str(path), f"cannot read: {exc.strerror or exc}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise WaferFileError(str(path), "expected a text file, found a NUL byte", offset=nul)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, max(0, offset)) + 1
