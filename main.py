"""Start WaferSeg Studio (also the PyInstaller entry point).

    python main.py [--lot annotations.json] [--wafer ID]

With no arguments it opens the demo lot of synthetic wafers, writing it to the user data
folder on first run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the window, run the Qt event loop."""
    parser = argparse.ArgumentParser(prog="waferseg-studio", description="WaferSeg Studio")
    parser.add_argument("--lot", help="a COCO annotations.json with die-grid PNGs beside it")
    parser.add_argument("--wafer", help="open this wafer id first")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import make_window
    from waferseg_core.coco import load
    from waferseg_core.demo import ensure_demo_lot
    from waferseg_core.errors import WaferSegError

    app = QApplication(sys.argv[:1])
    app.setApplicationName("WaferSeg Studio")
    app.setOrganizationName("WaferSeg")
    try:
        path = Path(args.lot) if args.lot else ensure_demo_lot()
        wafers = load(path)
    except WaferSegError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    window = make_window(wafers, path.parent.name, QSettings())
    if args.wafer:
        window.select_wafer(args.wafer)
    window.resize(1200, 800)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
