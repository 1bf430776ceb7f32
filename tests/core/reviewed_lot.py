"""A small lot with two annotators (agreeing, disagreeing, alone) for review and export tests."""

from __future__ import annotations

from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer

SQUARE = {"type": "Polygon", "coordinates": [[[5, 5], [15, 5], [15, 15], [5, 15], [5, 5]]]}
SHIFTED = {"type": "Polygon", "coordinates": [[[8, 5], [18, 5], [18, 15], [8, 15], [8, 5]]]}


def make_reviewed_lot(url: str) -> tuple[Store, list[int]]:
    """Lot ``L``: wafer 0 both agree (Loc), wafer 1 Loc vs shifted Center, wafer 2 ann alone,
    wafer 3 nobody. Users ann, bob (annotators), rev (engineer); admin ``root`` on PostgreSQL."""
    store = Store(url)
    admin = store.login() if store.is_sqlite else store.add_user(None, "root", "admin", "pw")
    ann = store.add_user(admin, "ann", "annotator", "pw")
    bob = store.add_user(admin, "bob", "annotator", "pw")
    store.add_user(admin, "rev", "engineer", "pw")
    ids = store.import_lot(admin, "L", [generate_wafer(1, i).wafer for i in range(4)])
    store.save_annotation(ann, ids[0], 5, SQUARE)
    store.save_annotation(bob, ids[0], 5, SQUARE)
    store.save_annotation(ann, ids[1], 5, SQUARE)
    store.save_annotation(bob, ids[1], 1, SHIFTED)
    store.save_annotation(ann, ids[2], 5, SQUARE)
    return store, ids
