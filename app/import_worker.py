"""Importing files and folders in a worker thread, with progress and cancel."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from waferseg_core import formats
from waferseg_core.errors import WaferFileError, WaferSegError
from waferseg_core.store.service import Store, UserRef
from waferseg_core.wafer import WaferMap


class ImportWorker(QObject):
    """Reads every file, then imports the good ones in one transaction.

    A bad file is reported and the others still import; a cancel before the end imports nothing.
    """

    progress = Signal(int, int)  # files read, files in all
    done = Signal(dict, list)  # {lot: wafer count}, ["file: error", ...]
    failed = Signal(str)

    def __init__(self, store: Store, user: UserRef, paths: list[str]) -> None:
        super().__init__()
        self.store, self.user, self.paths = store, user, paths
        self._stop = False

    def stop(self) -> None:
        """Cancel (honoured between files)."""
        self._stop = True

    @Slot()
    def run(self) -> None:
        """Read, then import."""
        files = formats.expand_paths(self.paths)
        lots: dict[str, list[WaferMap]] = {}
        errors: list[str] = []
        for i, f in enumerate(files):
            if self._stop:
                self.failed.emit("import cancelled; nothing was imported")
                return
            try:
                for m in formats.read(f):
                    lots.setdefault(m.lot or f.parent.name, []).append(m)
            except WaferFileError as exc:
                errors.append(str(exc))
            self.progress.emit(i + 1, len(files))
        if self._stop:
            self.failed.emit("import cancelled; nothing was imported")
            return
        try:
            if lots:
                self.store.import_lots(self.user, lots)
        except WaferSegError as exc:
            self.failed.emit(str(exc))
            return
        self.done.emit({k: len(v) for k, v in lots.items()}, errors)
