"""Predicting a lot in a worker thread: the UI never waits on the model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from waferseg_core.inference import Predictor
from waferseg_core.store.service import Store, UserRef

CHUNK = 32


class PredictWorker(QObject):
    """Predicts the wafers of a lot (store cache first), reporting as it goes.

    Signals carry plain values so the GUI thread can use them directly.
    """

    progress = Signal(int, int)  # done, total
    wafer_predicted = Signal(
        int, object
    )  # wafer id, dict(pattern, patterns, confidence, uncertainty, mask)
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
            for k in range(0, total, CHUNK):
                if self._stop:
                    break
                ids = self.wafer_ids[k : k + CHUNK]
                maps = [self.store.wafer(self.user, i) for i in ids]
                todo = []
                for wid, w in zip(ids, maps, strict=True):
                    hit = self.store.cached_prediction(
                        self.user, w.content_hash, self.predictor.hash
                    )
                    if hit is None:
                        todo.append((wid, w))
                        continue
                    mask = np.frombuffer(hit["mask"], np.uint8).reshape(w.shape)
                    self.wafer_predicted.emit(wid, {**hit, "mask": mask, "grid": w.grid})
                if todo:
                    t = time.perf_counter()
                    preds = self.predictor.predict([w for _, w in todo])
                    items: list[dict[str, Any]] = []
                    for (wid, w), p in zip(todo, preds, strict=True):
                        res = {
                            "pattern": p.pattern,
                            "patterns": p.patterns,
                            "confidence": p.confidence,
                            "uncertainty": p.uncertainty,
                            "mask": p.mask,
                        }
                        items.append({"wafer_hash": w.content_hash, **res})
                        res.update(grid=w.grid, probability=p.probability, entropy=p.entropy)
                        self.wafer_predicted.emit(wid, res)
                    if self.user.can("infer"):
                        self.store.cache_predictions(
                            self.user,
                            self.predictor.hash,
                            items,
                            ms=(time.perf_counter() - t) * 1000,
                        )
                done += len(ids)
                self.progress.emit(done, total)
        except Exception as exc:  # reported in the status bar; the UI stays usable
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.finished.emit((time.perf_counter() - t0) * 1000)
