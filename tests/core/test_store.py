"""The store on SQLite and on the real PostgreSQL server: schema, service layer, roles, jobs."""

import math
import zlib
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from waferseg_core.errors import (
    ConflictError,
    GeometryError,
    InvalidInputError,
    PermissionDeniedError,
)
from waferseg_core.formats.bins import ink
from waferseg_core.geometry import geometry_from_mask, to_geojson
from waferseg_core.store.models import Base
from waferseg_core.store.service import Store, check_password, hash_password
from waferseg_core.synth import first_sized, generate_wafer
from waferseg_core.wafer import CoordFrame, Defect

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]]}
BIGGER = {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]]]}


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def admin(store):
    return store.add_user(None, "ada", "admin", "s3cret")


HEAD = "0006"


def test_migrations_build_the_schema_without_drift(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert store.migration["to"] == HEAD
    again = Store(store.url)  # opening a current store runs nothing
    assert again.migration["from"] == again.migration["to"] == HEAD
    again.close()


# The predictions table as revisions 0001-0005 made it (no pattern_probability): the service
# writes today's rows, so a store of an earlier release gets its cache written here.
OLD_PREDICTIONS = sa.table(
    "predictions",
    sa.column("wafer_hash", sa.String),
    sa.column("model_hash", sa.String),
    sa.column("mask", sa.LargeBinary),
    sa.column("pattern", sa.String),
    sa.column("patterns", sa.JSON),
    sa.column("confidence", sa.Double),
    sa.column("uncertainty", sa.Double),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


@pytest.mark.parametrize("before", ["0001", "0002", "0003", "0004", "0005"])
def test_upgrades_drop_the_outdated_cache(store_url, before):
    # 0002-0004 each change how large wafers are predicted; 0005 puts wafers with a side of 32
    # dies or fewer (and coarse views, which can be that short) on a 64-die canvas, which
    # changes what the model computes for them, embeddings included; 0006 drops every cached
    # prediction (they lack the head's probability of the pattern), embeddings stay.
    from alembic import command

    from waferseg_core.store.db import create_engine
    from waferseg_core.store.migrate import _config

    engine = create_engine(store_url)
    cfg = _config()
    with engine.begin() as conn:  # a store as the previous release left it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, before)
    engine.dispose()
    old = Store(store_url, migrate=False)
    admin = old.add_user(None, "ada", "admin", "pw")
    small = first_sized(3, up_to=32).wafer
    medium = first_sized(3, over=40, up_to=64).wafer
    large = first_sized(3, over=96, limit=400).wafer
    ids = old.import_lot(admin, "L", [small, medium, large])
    with old.engine.begin() as conn:
        for w in (small, medium, large):
            conn.execute(
                sa.insert(OLD_PREDICTIONS).values(
                    wafer_hash=w.content_hash,
                    model_hash="m" * 64,
                    mask=zlib.compress(np.zeros(w.shape, np.uint8).tobytes()),
                    pattern="none",
                    patterns=[],
                    confidence=0.9,
                    uncertainty=0.1,
                    created_at=datetime.now(UTC),
                )
            )
    old.save_embeddings(admin, "m" * 64, {i: np.ones(4, np.float32) for i in ids})
    old.close()
    new = Store(store_url)
    assert new.migration["from"] == before and new.migration["to"] == HEAD
    for w in (small, medium, large):
        assert new.cached_prediction(admin, w.content_hash, "m" * 64) is None
    kept = ids if before == "0005" else [ids[1]]  # medium wafers keep their embeddings
    assert sorted(new.embeddings(admin, "m" * 64)) == kept
    new.close()


def test_users_roles_and_passwords(store, admin):
    assert store.login("ada", "s3cret") == admin
    with pytest.raises(PermissionDeniedError, match="login failed"):
        store.login("ada", "wrong")
    with pytest.raises(PermissionDeniedError, match="login failed"):
        store.login("nobody", "x")
    viewer = store.add_user(admin, "vic", "viewer", "pw")
    with pytest.raises(PermissionDeniedError, match="vic \\(viewer\\) may not users"):
        store.add_user(viewer, "eve", "admin", "pw")
    with pytest.raises(InvalidInputError, match="role must be one of"):
        store.add_user(admin, "x", "boss")
    assert [u.name for u in store.users(viewer)] == ["ada", "vic"]
    stored = hash_password("pw", n=2**10)
    assert (
        stored.startswith("scrypt$")
        and check_password("pw", stored)
        and not check_password("px", stored)
    )


def test_first_user_must_be_admin(store):
    with pytest.raises(InvalidInputError, match="first user"):
        store.add_user(None, "ann", "annotator")


def test_a_viewer_cannot_write_anything(store, admin):
    viewer = store.add_user(admin, "vic", "viewer", "pw")
    ids = store.import_lot(admin, "L1", [generate_wafer(1, 0).wafer])
    for call in (
        lambda: store.import_lot(viewer, "L2", [generate_wafer(1, 1).wafer]),
        lambda: store.save_annotation(viewer, ids[0], 1, SQUARE),
        lambda: store.enqueue_job(viewer, {"epochs": 1}),
        lambda: store.cache_predictions(viewer, "m", []),
        lambda: store.set_status(viewer, ids[0], "reviewed"),
        lambda: store.register_model(viewer, "m", "/x", "h"),
    ):
        with pytest.raises(PermissionDeniedError):
            call()
    annotator = store.add_user(admin, "ann", "annotator", "pw")
    with pytest.raises(PermissionDeniedError):
        store.import_lot(annotator, "L3", [generate_wafer(1, 2).wafer])
    with pytest.raises(PermissionDeniedError):
        store.promote(annotator, 1)
    store.save_annotation(annotator, ids[0], 1, SQUARE)  # annotators annotate


def test_defects_with_missing_values_and_class_names_are_kept(store, admin):
    # KLARF "NA" reads as NaN, which JSON cannot hold: PostgreSQL refused the whole lot.
    w = generate_wafer(2, 5).wafer
    w.defects = (Defect(1, 2, math.nan, 4.5, math.nan, 3), Defect(0, 1, 1.0, 2.0, 3.0, 0))
    w.extra["class_lookup"] = {0: "Undefined", 3: "Big_Particle"}  # the file's class names
    (wid,) = store.import_lot(admin, "NA-LOT", [w])
    assert store.wafer(admin, wid).extra["class_lookup"] == {0: "Undefined", 3: "Big_Particle"}
    back = store.wafer(admin, wid).defects
    assert (back[0].row, back[0].col, back[0].y_um, back[0].class_code) == (1, 2, 4.5, 3)
    assert math.isnan(back[0].x_um) and math.isnan(back[0].size_um)
    assert back[1] == w.defects[1]


def test_import_is_all_or_nothing_and_round_trips(store, admin):
    w = generate_wafer(2, 3).wafer
    w.defects = (Defect(1, 2, 3.5, 4.5, 1.0, 7),)
    w.frame = CoordFrame("left", -3, 9, 1, -1)
    inked = ink(w, generate_wafer(2, 3).mask)
    ids = store.import_lot(admin, "LOT-A", [inked, generate_wafer(2, 4).wafer])
    back = store.wafer(admin, ids[0])
    assert back.same_dies(w) and back.frame == w.frame and back.defects == w.defects
    assert np.array_equal(back.bins, inked.bins) and back.bin_table == inked.bin_table
    assert back.lot == "LOT-A" and back.content_hash == w.content_hash
    with pytest.raises(InvalidInputError, match="already holds wafers"):
        store.import_lots(
            admin, {"NEW": [generate_wafer(2, 9).wafer], "LOT-A": [generate_wafer(2, 3).wafer]}
        )
    assert [lot["name"] for lot in store.lots(admin)] == ["LOT-A"]  # NEW was rolled back too


def test_list_filter_and_worst_first(store, admin):
    wafers = [generate_wafer(4, i).wafer for i in range(6)]
    ids = store.import_lot(admin, "L", wafers)
    rows = store.list_wafers(admin, lot="L", worst_first=True)
    fracs = [r["fail_dies"] / r["dies"] for r in rows]
    assert fracs == sorted(fracs, reverse=True) and len(rows) == 6
    mid = store.register_model(admin, "m1", "/m1.onnx", "hash1")
    store.promote(admin, mid)
    store.cache_predictions(
        admin,
        "hash1",
        [
            {
                "wafer_hash": wafers[0].content_hash,
                "mask": np.zeros(wafers[0].shape, np.uint8),
                "pattern": "Loc",
                "patterns": ["Loc"],
                "pattern_probability": 0.9,
                "confidence": 0.4,
                "uncertainty": 0.9,
            },
            {
                "wafer_hash": wafers[1].content_hash,
                "mask": np.zeros(wafers[1].shape, np.uint8),
                "pattern": "none",
                "patterns": [],
                "pattern_probability": 0.2,
                "confidence": 0.95,
                "uncertainty": 0.1,
            },
        ],
    )
    assert [r["id"] for r in store.list_wafers(admin, pattern="Loc")] == [ids[0]]
    assert [r["id"] for r in store.list_wafers(admin, max_confidence=0.5)] == [ids[0]]
    assert [r["id"] for r in store.list_wafers(admin, min_uncertainty=0.5)] == [ids[0]]
    cached = store.cached_prediction(admin, wafers[1].content_hash, "hash1")
    assert cached["pattern"] == "none" and len(cached["mask"]) == wafers[1].rows * wafers[1].cols
    assert cached["pattern_probability"] == pytest.approx(0.2)
    listed = {r["id"]: r["pattern_probability"] for r in store.list_wafers(admin, lot="L")}
    assert listed[ids[0]] == pytest.approx(0.9) and listed[ids[2]] is None
    # Least sure call first (0.2, then 0.9); wafers with no call after them, in id order.
    order = [r["id"] for r in store.list_wafers(admin, lot="L", least_sure_first=True)]
    assert order == [ids[1], ids[0], *ids[2:]]
    with pytest.raises(InvalidInputError, match="expected one order"):
        store.list_wafers(admin, worst_first=True, least_sure_first=True)
    assert store.cached_prediction(admin, wafers[2].content_hash, "hash1") is None
    store.set_status(admin, ids[2], "reviewed")
    assert [r["id"] for r in store.list_wafers(admin, status="reviewed")] == [ids[2]]
    # The AL queue shows a model's cached pattern per queued wafer (None where it has none).
    store.queue_al(admin, "margin", [(ids[2], 0.7), (ids[0], 0.6), (ids[1], 0.5)])
    queue = store.al_queue(admin, "hash1")
    assert [(r["wafer_id"], r["predicted"]) for r in queue] == [
        (ids[2], None),
        (ids[0], "Loc"),
        (ids[1], "none"),
    ]
    assert [r["predicted"] for r in store.al_queue(admin, "other")] == [None] * 3
    assert "predicted" not in store.al_queue(admin)[0]


def test_annotation_versions_conflicts_and_history(store, admin):
    bob = store.add_user(admin, "bob", "annotator", "pw")
    (wid,) = store.import_lot(admin, "L", [generate_wafer(1, 0).wafer])
    aid, v1 = store.save_annotation(admin, wid, 5, SQUARE)
    _, v2 = store.save_annotation(bob, wid, 5, BIGGER, annotation_id=aid, base_version=v1)
    assert (v1, v2) == (1, 2)
    with pytest.raises(ConflictError) as err:
        store.save_annotation(admin, wid, 8, SQUARE, annotation_id=aid, base_version=v1)  # stale
    assert err.value.author == "bob" and err.value.current_version == 2
    assert err.value.revision["after"]["geometry"] == BIGGER
    v3 = store.delete_annotation(admin, aid, v2)
    assert store.annotations(admin, wid) == []
    assert store.annotations(admin, wid, include_deleted=True)[0]["deleted"]
    hist = store.history(admin, wid)
    assert [(h["action"], h["version"], h["user"]) for h in hist] == [
        ("create", 1, "ada"),
        ("update", 2, "bob"),
        ("delete", v3, "ada"),
    ]
    assert hist[1]["before"]["geometry"] == SQUARE and hist[1]["after"]["geometry"] == BIGGER


def test_bad_geometry_and_class_are_refused(store, admin):
    (wid,) = store.import_lot(admin, "L", [generate_wafer(1, 0).wafer])
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [4, 4], [4, 0], [0, 4], [0, 0]]]}
    with pytest.raises(GeometryError, match="self-intersection"):
        store.save_annotation(admin, wid, 1, bowtie)
    with pytest.raises(InvalidInputError, match="class id must be 1-8"):
        store.save_annotation(admin, wid, 9, SQUARE)
    assert store.history(admin, wid) == []


def test_job_queue_claim_heartbeat_cancel(store, admin):
    j1 = store.enqueue_job(admin, {"epochs": 1})
    j2 = store.enqueue_job(admin, {"epochs": 2})
    first = store.claim_job("host-a")
    second = store.claim_job("host-b")
    assert (first["id"], second["id"]) == (j1, j2)
    assert store.claim_job("host-c") is None
    assert store.heartbeat(j1) is False
    store.request_cancel(admin, j1)
    assert store.heartbeat(j1) is True
    store.add_epoch(j2, 0, {"loss": 1.0})
    store.finish_job(j2, "failed", "Traceback ... boom")
    job = store.job(admin, j2)
    assert (
        job["status"] == "failed"
        and "boom" in job["error_text"]
        and job["epochs"] == [{"loss": 1.0}]
    )
    with pytest.raises(InvalidInputError, match=f"job {j2}: expected a queued or running job"):
        store.request_cancel(admin, j2)  # it has ended: nothing to ask
    j3 = store.enqueue_job(admin, {})
    assert store.request_cancel(admin, j3) == "cancelled"
    assert store.job(admin, j3)["status"] == "cancelled" and store.claim_job("h") is None


def test_model_registry(store, admin):
    a = store.register_model(admin, "a", "/a.onnx", "ha", {"mean_iou": 0.5})
    b = store.register_model(admin, "b", "/b.onnx", "hb")
    assert store.register_model(admin, "a again", "/a2.onnx", "ha") == a
    store.promote(admin, b)
    store.promote(admin, a)
    assert [(m["id"], m["active"]) for m in store.models(admin)] == [(b, False), (a, True)]


def test_local_user_is_admin_on_sqlite(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'local.sqlite'}")
    u = s.login()
    assert u.role == "admin"
    assert s.login() == u
    s.close()


def test_coco_geometry_survives_the_store(store, admin):
    sw = generate_wafer(6, 2, mixed=0.5)
    (wid,) = store.import_lot(admin, "L", [sw.wafer])
    for cls in np.unique(sw.mask[sw.mask > 0]):
        store.save_annotation(admin, wid, int(cls), to_geojson(geometry_from_mask(sw.mask == cls)))
    from waferseg_core.coco import Annotation, mask_from_annotations
    from waferseg_core.geometry import from_geojson

    anns = [
        Annotation(a["class_id"], from_geojson(a["geometry"]))
        for a in store.annotations(admin, wid)
    ]
    assert np.array_equal(mask_from_annotations(anns, sw.wafer), sw.mask)


def test_sqlite_backup_is_a_consistent_copy(tmp_path):
    import sqlite3

    from waferseg_core.store.migrate import backup_sqlite

    s = Store(f"sqlite:///{tmp_path / 'a.sqlite'}")
    user = s.login()
    s.import_lot(user, "L", [generate_wafer(1, i).wafer for i in range(3)])
    # The WAL still holds the import (no checkpoint): the backup must include it anyway.
    copy = backup_sqlite(tmp_path / "a.sqlite", "0001")
    assert copy.name == "a.sqlite.bak-0001"
    con = sqlite3.connect(copy)
    assert con.execute("select count(*) from wafers").fetchone()[0] == 3
    con.close()
    s.close()


def test_replace_annotations_keeps_history(store, admin):
    sw = generate_wafer(8, 1, mixed=0.5)
    (wid,) = store.import_lot(admin, "L", [sw.wafer])
    store.save_annotation(admin, wid, 1, SQUARE)
    ids = store.replace_annotations(admin, wid, sw.mask, model_version="m1")
    anns = store.annotations(admin, wid)
    assert [a["id"] for a in anns] == ids and all(a["source"] == "model" for a in anns)
    assert sorted(a["class_id"] for a in anns) == sorted(int(c) for c in np.unique(sw.mask) if c)
    assert [h["action"] for h in store.history(admin, wid)][:2] == ["create", "delete"]
