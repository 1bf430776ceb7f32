"""The demo lot: synthetic wafers written on first run so the app opens on real content."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from waferseg_core.coco import CocoWafer, load
from waferseg_core.synth import write_dataset

DEMO_SEED = 2026
DEMO_COUNT = 25
DEMO_MIXED = 0.2


def data_dir() -> Path:
    """The user data folder (``WAFERSEG_HOME`` overrides it, e.g. for tests)."""
    import os

    env = os.environ.get("WAFERSEG_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("waferseg-studio", "WaferSeg"))


def ensure_demo_lot(root: Path | None = None) -> Path:
    """Write the demo lot (25 synthetic wafers, COCO + PNGs) unless it is already there.

    Returns:
        The demo lot's ``annotations.json``.
    """
    folder = (root or data_dir()) / "demo-lot"
    ann = folder / "annotations.json"
    if not ann.exists():
        # write_dataset replaces annotations.json last and atomically: a killed first run
        # leaves no half-written lot behind, only PNGs that the next run overwrites.
        write_dataset(folder, DEMO_COUNT, DEMO_SEED, mixed=DEMO_MIXED)
    return ann


def load_demo_lot(root: Path | None = None) -> list[CocoWafer]:
    """The demo lot's wafers with their annotations."""
    return load(ensure_demo_lot(root))


DEMO_LOT = "demo-lot"


def ensure_demo_store(store: object, user: object) -> str:
    """Import the demo lot (wafers and their annotations) into a store that lacks it.

    Returns:
        The demo lot's name.
    """
    from waferseg_core.geometry import to_geojson
    from waferseg_core.store.service import NewAnnotation, Store, UserRef

    assert isinstance(store, Store) and isinstance(user, UserRef)
    if any(lot["name"] == DEMO_LOT for lot in store.lots(user)):
        return DEMO_LOT
    items = load_demo_lot()
    for i, cw in enumerate(items):
        cw.wafer.wafer_id = str(i + 1)
    anns = [
        [NewAnnotation(a.class_id, to_geojson(a.geometry), a.source) for a in cw.annotations]
        for cw in items
    ]
    store.import_lots(user, {DEMO_LOT: [cw.wafer for cw in items]}, annotations={DEMO_LOT: anns})
    return DEMO_LOT
