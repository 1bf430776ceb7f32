"""Start WaferSeg Studio (also the PyInstaller entry point).

    python main.py [--store URL] [--user NAME] [--model M.onnx] [--lot NAME] [--wafer ID]
                   [--selftest]

On the embedded defaults (a SQLite store in the user data folder, the shipped model) the first
run imports a demo lot of synthetic wafers and predicts it. ``--selftest`` runs offscreen, opens
the demo lot, predicts it and prints ``{"wafers", "predicted", "ms"}`` (exit 0), or exits 1 with
the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, open the store, build the window, run the Qt event loop."""
    parser = argparse.ArgumentParser(prog="waferseg-studio", description="WaferSeg Studio")
    parser.add_argument(
        "--store", help="store URL (default: WAFERSEG_STORE or the user's SQLite file)"
    )
    parser.add_argument("--user", help="log in as this user (password from WAFERSEG_PASSWORD)")
    parser.add_argument("--model", help="an .onnx model (default: the shipped model)")
    parser.add_argument("--lot", help="open this lot first")
    parser.add_argument("--wafer", help="open this wafer id first")
    parser.add_argument(
        "--selftest", action="store_true", help="offscreen: open and predict the demo lot"
    )
    args = parser.parse_args(argv)
    if args.selftest:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.dialogs import LoginDialog
    from app.main_window import MainWindow
    from waferseg_core import settings as prefs_io
    from waferseg_core.demo import DEMO_LOT, ensure_demo_store
    from waferseg_core.errors import WaferSegError
    from waferseg_core.inference import Predictor
    from waferseg_core.store.service import Store

    app = QApplication(sys.argv[:1])
    app.setApplicationName("WaferSeg Studio")
    app.setOrganizationName("WaferSeg")
    prefs = prefs_io.load()
    try:
        store = Store(args.store or prefs.store_url or None)
        if args.user:
            user = store.login(args.user, os.environ.get("WAFERSEG_PASSWORD"))
        elif store.is_sqlite:
            user = store.login()
        else:  # a shared store: ask who is there
            dialog = LoginDialog(store)
            if not dialog.exec() or dialog.user is None:
                return 2
            user = dialog.user
        if store.is_sqlite and user.can("import"):
            ensure_demo_store(store, user)
        predictor = Predictor(args.model or prefs.model_path or None)
    except WaferSegError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1 if args.selftest else 2
    window = MainWindow(store, user, predictor, QSettings(), prefs)
    if args.selftest:
        loop = QEventLoop()
        result: dict[str, float] = {}
        window.lot_predicted.connect(lambda ms: (result.setdefault("ms", ms), loop.quit()))
        QTimer.singleShot(120_000, loop.quit)
        if window.lot_box.currentText() != DEMO_LOT:
            window.lot_box.setCurrentText(DEMO_LOT)
        loop.exec()
        window.close()
        if "ms" not in result:
            sys.stderr.write("error: the demo lot was not predicted within 120 s\n")
            return 1
        wafers = window.browser.topLevelItemCount()
        print(
            json.dumps(
                {
                    "wafers": wafers,
                    "predicted": len(window.predictions),
                    "ms": round(result["ms"], 1),
                }
            )
        )
        return 0 if wafers and len(window.predictions) == wafers else 1
    if args.lot:
        window.lot_box.setCurrentText(args.lot)
    if args.wafer:
        window.select_wafer(args.wafer)
    window.resize(1280, 820)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
