"""Desktop app responsiveness, offscreen, with same-run baselines.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/app_bench.py

- lot: a fresh 25-wafer lot of maps up to 64x64 dies opened and fully predicted (goal <= 0.5 s),
  against the bare ONNX Runtime predictions of the same wafers;
- pan: frame time while panning a 300x300-die map zoomed in, against a 30x30-die map;
- edit: one gesture (class change: apply, redraw, save) on a 2,000-vertex polygon, against a
  20-vertex one.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time

import numpy as np
from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from waferseg_core.editing import add_polygon
from waferseg_core.inference import Predictor
from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import WaferMap


def median_ms(fn, n=30):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    app = QApplication([])
    out = {}
    with tempfile.TemporaryDirectory() as d:
        store = Store(f"sqlite:///{d}/s.sqlite")
        user = store.login()
        wafers, i = [], 0
        while len(wafers) < 25:
            w = generate_wafer(123, i).wafer
            i += 1
            if max(w.shape) <= 64:
                w.wafer_id = str(len(wafers) + 1)
                wafers.append(w)
        store.import_lot(user, "BENCH", wafers)
        pred = Predictor()
        pred.predict(wafers[:1])  # warm the session once for both measurements
        pred._cache.clear()
        t = time.perf_counter()
        pred.predict(wafers)
        bare = (time.perf_counter() - t) * 1000
        pred._cache.clear()
        win = MainWindow(store, user, pred, QSettings(f"{d}/s.ini", QSettings.Format.IniFormat))
        win.resize(1200, 800)
        win.show()
        loop = QEventLoop()
        got: dict[str, float] = {}
        win.lot_predicted.connect(lambda ms: (got.setdefault("ms", ms), loop.quit()))
        t = time.perf_counter()
        win.lot_box.setCurrentText("BENCH")
        QTimer.singleShot(60_000, loop.quit)
        loop.exec()
        wall = (time.perf_counter() - t) * 1000
        out["lot"] = {
            "wafers": 25,
            "open_and_predict_ms": round(wall, 1),
            "bare_predict_ms": round(bare, 1),
            "ratio": round(wall / bare, 2),
            "goal_ms": 500,
        }

        def pan_ms(shape):
            grid = generate_wafer(1, 0).wafer.grid
            big = WaferMap(grid=(np.resize(grid, shape) > 0).astype(np.uint8) + 1)
            win.view.show_wafer(big, None)
            win.view.scale(8, 8)
            bar = win.view.horizontalScrollBar()

            def step():
                bar.setValue((bar.value() + 40) % max(1, bar.maximum()))
                win.view.viewport().repaint()

            return median_ms(step, 60)

        small, large = pan_ms((30, 30)), pan_ms((300, 300))
        out["pan"] = {
            "frame_ms_300x300": round(large, 2),
            "frame_ms_30x30": round(small, 2),
            "ratio": round(large / small, 2),
        }

        wid = store.list_wafers(user, lot="BENCH")[0]["id"]
        win.select_wafer("1")

        def gesture_ms(vertices):
            win.editor.load(wid, store.wafer(user, wid))
            cx, cy = win.wafer.cols / 2, win.wafer.rows / 2
            pts = [
                (
                    cx + 20 * math.cos(2 * math.pi * k / vertices),
                    cy + 20 * math.sin(2 * math.pi * k / vertices),
                )
                for k in range(vertices)
            ]
            e = add_polygon(win.editor.doc, 5, pts)
            win.editor.push([e], "polygon")
            win.editor.selected = e.key
            cls = [5]

            def once():
                cls[0] = 3 if cls[0] == 5 else 5
                win.editor.set_class(cls[0])
                app.processEvents()

            return median_ms(once, 20)

        few, many = gesture_ms(20), gesture_ms(2000)
        out["edit"] = {
            "gesture_ms_2000_vertices": round(many, 2),
            "gesture_ms_20_vertices": round(few, 2),
            "ratio": round(many / few, 2),
        }
        win.close()
        store.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
