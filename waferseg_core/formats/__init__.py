"""Wafer-map file formats: one module per format, one registry, detection by content.

``read(path)`` returns every wafer a file holds (canonical orientation); ``write(maps, path,
name)`` writes with a format that has a writer. Readers raise only
:class:`~waferseg_core.errors.WaferFileError` for bad files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from waferseg_core.errors import WaferFileError
from waferseg_core.wafer import WaferMap

HEAD_BYTES = 4096

Reader = Callable[[Path], list[WaferMap]]
Writer = Callable[[Sequence[WaferMap], Path], None]


@dataclass(frozen=True)
class FileFormat:
    """A registered format.

    Attributes:
        name: Registry name (``png``, ``wm811k-npz`` ...), used by ``--format`` and metadata.
        description: One line for people.
        extensions: Lower-case extensions, with the dot, tried when content sniffing fails.
        sniff: Given the first bytes and the file name, says whether the file is this format.
        read: Reads every wafer of the file.
        write: Writes maps, or None for read-only formats.
    """

    name: str
    description: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes, str], bool]
    read: Reader
    write: Writer | None = None


_REGISTRY: dict[str, FileFormat] = {}


def register(fmt: FileFormat) -> FileFormat:
    """Add a format to the registry (modules call this at import)."""
    _REGISTRY[fmt.name] = fmt
    return fmt


_BUILTINS_LOADED = False


def _ensure_loaded() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # Imported for their register() side effect; kept here to avoid an import cycle.
    from waferseg_core.formats import (  # noqa: F401
        e142,
        g85,
        klarf,
        lswmd,
        png,
        sinf,
        stdf,
        tsk,
        wm811k,
    )


def all_formats() -> list[FileFormat]:
    """Every registered format, in registration order."""
    _ensure_loaded()
    return list(_REGISTRY.values())


def get(name: str) -> FileFormat:
    """The format registered under ``name``.

    Raises:
        WaferFileError: Unknown name; the message lists the valid ones.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise WaferFileError(name, f"unknown format; expected one of {valid}") from None


def detect(path: str | Path) -> FileFormat:
    """Find a file's format by its content, then by its extension.

    Raises:
        WaferFileError: The file cannot be read or no format recognises it.
    """
    _ensure_loaded()
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise WaferFileError(str(p), f"cannot open: {exc.strerror or exc}") from None
    for fmt in _REGISTRY.values():
        if fmt.sniff(head, p.name):
            return fmt
    suffix = p.suffix.lower()
    for fmt in _REGISTRY.values():
        if suffix in fmt.extensions:
            return fmt
    shown = head[:16].hex(" ") if head else "an empty file"
    names = ", ".join(_REGISTRY)
    raise WaferFileError(str(p), f"unknown wafer-map format (known: {names}); first bytes: {shown}")


def read(path: str | Path, fmt: str | None = None) -> list[WaferMap]:
    """Read every wafer of a file, detecting the format unless ``fmt`` names it.

    Raises:
        WaferFileError: The file is missing, unrecognised, malformed or truncated.
    """
    p = Path(path)
    if not p.is_file():
        raise WaferFileError(str(p), "expected a wafer-map file, found no such file")
    f = get(fmt) if fmt else detect(p)
    try:
        maps = f.read(p)
    except WaferFileError:
        raise
    except (
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        OverflowError,
        UnicodeError,
        RecursionError,
        MemoryError,
    ) as exc:
        # Every reader raises WaferFileError itself (the fuzz tests hold them to it); this net
        # keeps the one-line contract should a reader still miss a case.
        raise WaferFileError(
            str(p), f"could not be read as {f.name}: {type(exc).__name__}: {exc}"
        ) from None
    if not maps:
        raise WaferFileError(
            str(p), f"expected at least one wafer in this {f.name} file, found none"
        )
    return maps


def write(maps: Sequence[WaferMap], path: str | Path, fmt: str) -> None:
    """Write maps to ``path`` with the named format.

    Raises:
        WaferFileError: The format cannot write.
    """
    f = get(fmt)
    if f.write is None:
        writable = ", ".join(x.name for x in all_formats() if x.write)
        raise WaferFileError(str(path), f"format {fmt} is read-only; writable: {writable}")
    f.write(maps, Path(path))


def write_each(
    maps: Sequence[WaferMap], path: Path, suffix: str, encode: Callable[[WaferMap], bytes]
) -> None:
    """Write a one-map-per-file format.

    A single map goes to ``path``; several go to ``<stem>_<wafer id or index><suffix>`` beside it.
    """
    if len(maps) == 1:
        path.write_bytes(encode(maps[0]))
        return
    for i, m in enumerate(maps):
        path.with_name(f"{path.stem}_{m.wafer_id or i}{suffix}").write_bytes(encode(m))


@dataclass
class FolderRead:
    """What a folder (or a list of files) held: wafers grouped into lots, and the bad files.

    Attributes:
        lots: Lot id -> wafers, in file order (wafers with no lot id go under ``default_lot``).
        errors: One error per file that could not be read; the other files still count.
        files: Files read successfully.
    """

    lots: dict[str, list[WaferMap]]
    errors: list[WaferFileError]
    files: list[Path]


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The files named, with folders expanded to the files under them (sorted, hidden skipped)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(
                sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
            )
        else:
            files.append(p)
    return files


def read_many(paths: Sequence[str | Path], default_lot: str = "unassigned") -> FolderRead:
    """Read files and folders (recursively, sorted), grouping wafers into lots by lot id."""
    files = expand_paths(paths)
    lots: dict[str, list[WaferMap]] = {}
    errors: list[WaferFileError] = []
    done: list[Path] = []
    for f in files:
        try:
            maps = read(f)
        except WaferFileError as exc:
            errors.append(exc)
            continue
        done.append(f)
        for m in maps:
            lots.setdefault(m.lot or default_lot, []).append(m)
    return FolderRead(lots, errors, done)
