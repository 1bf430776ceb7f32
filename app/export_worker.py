"""Exporting a lot in a worker thread, with progress and cancel (all or nothing)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from waferseg_core.errors import WaferSegError
from waferseg_core.exports import export_lot
from waferseg_core.store.service import Store, UserRef


class _CancelledError(Exception):
    """Raised from the progress callback; export_lot then removes what it staged."""


class ExportWorker(QObject):
    """Runs :func:`waferseg_core.exports.export_lot`; a cancel leaves nothing behind."""

    progress = Signal(int, int)  # wafers done, wafers in all
    done = Signal(dict)  # the export summary
    failed = Signal(str)

    def __init__(
        self, store: Store, user: UserRef, lot: str, kind: str, out: str, model: str
    ) -> None:
        super().__init__()
        self.store, self.user = store, user
        self.lot, self.kind, self.out, self.model = lot, kind, out, model
        self._stop = False

    def stop(self) -> None:
        """Cancel (honoured between wafers)."""
        self._stop = True

    def _progress(self, done: int, total: int) -> None:
        if self._stop:
            raise _CancelledError
        self.progress.emit(done, total)

    @Slot()
    def run(self) -> None:
        """Export, reporting each wafer."""
        try:
            summary = export_lot(
                self.store,
                self.user,
                self.lot,
                self.kind,
                self.out,
                model=self.model,
                progress=self._progress,
            )
        except _CancelledError:
            self.failed.emit("export cancelled; nothing was written")
            return
        except (WaferSegError, OSError) as exc:
            self.failed.emit(f"export failed, nothing was written: {exc}")
            return
        self.done.emit(summary)
