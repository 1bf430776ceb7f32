"""Predicting a lot in a worker thread: the UI never waits on the model."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from waferseg_core.inference import Predictor
from waferseg_core.store.predict import predict_stored
from waferseg_core.store.service import Store, UserRef


class PredictWorker(QObject):
    """Predicts the wafers of a lot (store cache first), reporting as it goes.

    Signals carry plain values so the GUI thread can use them directly.
    """

    progress = Signal(int, int)  # done, total
    wafer_predicted = Signal(
        int, object
    )  # wafer id, dict(pattern, patterns, pattern_probability, confidence, uncertainty, mask)
    finished = Signal(float)  # milliseconds for the whole lot
    failed = Signal(str)

    def __init__(
        self, store: Store, user: UserRef, predictor: Predictor, wafer_ids: list[int]
    ) -> None:
        super().__init__()
        self.store, self.user, self.predictor, self.wafer_ids = store, user, predictor, wafer_ids
        self._stop = False

    def stop(self) -> None:
        """Ask the worker to stop after the current chunk."""
        self._stop = True

    @Slot()
    def run(self) -> None:
        """Predict every wafer; cached predictions are reused and new ones cached."""
        t0 = time.perf_counter()
        try:
            total = len(self.wafer_ids)
            done = 0
            for chunk in predict_stored(self.store, self.user, self.predictor, self.wafer_ids):
                for p in chunk:
                    res: dict[str, Any] = {
                        "pattern": p.pattern,
                        "patterns": p.patterns,
                        "pattern_probability": p.pattern_probability,
                        "confidence": p.confidence,
                        "uncertainty": p.uncertainty,
                        "mask": p.mask,
                        "grid": p.wafer.grid,
                    }
                    if p.probability is not None:
                        res.update(probability=p.probability, entropy=p.entropy)
                    self.wafer_predicted.emit(p.wafer_id, res)
                done += len(chunk)
                self.progress.emit(done, total)
                if self._stop:
                    break
        except Exception as exc:  # reported in the status bar; the UI stays usable
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.finished.emit((time.perf_counter() - t0) * 1000)
