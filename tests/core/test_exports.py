"""Exports of a stored lot round-trip through the project's readers and pycocotools."""

import csv
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tests.core.reviewed_lot import make_reviewed_lot
from waferseg_core.classes import CLASSES
from waferseg_core.cli import main
from waferseg_core.coco import load as load_coco
from waferseg_core.coco import mask_from_annotations
from waferseg_core.errors import InvalidInputError
from waferseg_core.exports import export_lot
from waferseg_core.formats import read
from waferseg_core.formats.bins import mask_from_inked
from waferseg_core.formats.pngio import decode, text_chunks
from waferseg_core.inference import Predictor
from waferseg_core.store.review_ops import wafer_masks


@pytest.fixture
def lot(tmp_path):
    store, ids = make_reviewed_lot(f"sqlite:///{tmp_path / 's.sqlite'}")
    user = store.login()
    wm = wafer_masks(store, user, ids[1])
    from waferseg_core.review import majority_vote

    store.save_consensus(
        store.login("rev", "pw"),
        ids[1],
        majority_vote(list(wm.by_annotator.values()), wm.wafer.grid),
        method="majority vote",
    )
    yield store, user, ids
    store.close()


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("s.sqlite"))


def _finals(store, user, ids):
    return [wafer_masks(store, user, i).final() for i in ids]


def test_csv_columns_and_values(lot, tmp_path):
    store, user, ids = lot
    seen = []
    out = tmp_path / "lot.csv"
    summary = export_lot(store, user, "L", "csv", out, progress=lambda d, t: seen.append((d, t)))
    assert summary == {"kind": "csv", "lot": "L", "wafers": 4, "out": str(out), "files": 1}
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    rows = list(csv.DictReader(out.open()))
    assert [r["mask_source"] for r in rows] == ["majority", "consensus", "annotator", "model"]
    assert [r["reviewer"] for r in rows] == ["", "rev", "", ""]
    assert rows[0]["annotators"] == "ann;bob" and rows[2]["annotators"] == "ann"
    finals = _finals(store, user, ids)
    for r, f in zip(rows[:3], finals[:3], strict=True):
        for c in CLASSES[1:]:
            assert int(r[f"dies_{c.name}"]) == int((f == c.id).sum())
    # The unannotated wafer carries the model's mask and verdict.
    pred = Predictor().predict([store.wafer(user, ids[3])])[0]
    assert rows[3]["pattern"] == pred.pattern
    assert float(rows[3]["confidence"]) == pytest.approx(pred.confidence, abs=1e-4)
    assert float(rows[3]["pattern_probability"]) == pytest.approx(
        pred.pattern_probability, abs=1e-4
    )
    assert sum(int(rows[3][f"dies_{c.name}"]) for c in CLASSES[1:]) == sum(pred.class_dies.values())
    assert rows[0]["model_version"] == "waferseg-default.int8.onnx"  # the shipped model


def test_coco_round_trips_through_pycocotools_and_the_reader(lot, tmp_path):
    store, user, ids = lot
    out = tmp_path / "coco"
    export_lot(store, user, "L", "coco", out)
    data = json.loads((out / "annotations.json").read_text())
    assert [img["mask_source"] for img in data["images"]] == [
        "majority",
        "consensus",
        "annotator",
        "none",
    ]
    consensus = [a for a in data["annotations"] if a["attributes"]["source"] == "consensus"]
    assert consensus and all(a["attributes"]["reviewer"] == "rev" for a in consensus)
    coco = COCO(str(out / "annotations.json"))
    finals = _finals(store, user, ids)
    for img_id, final in zip((1, 2, 3), finals[:3], strict=True):
        got = np.zeros_like(final)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])):
            got[mask_utils.decode(coco.annToRLE(a)).astype(bool)] = a["category_id"]
        assert np.array_equal(got, final)
    back = load_coco(out / "annotations.json")
    for cw, final in zip(back[:3], finals[:3], strict=True):
        assert np.array_equal(mask_from_annotations(cw.annotations, cw.wafer), final)
    assert np.array_equal(back[3].wafer.grid, store.wafer(user, ids[3]).grid)


@pytest.mark.parametrize("kind", ["g85", "e142", "stdf", "sinf", "tsk"])
def test_inked_maps_round_trip(lot, tmp_path, kind):
    store, user, ids = lot
    out = tmp_path / f"lot-{kind}"  # a file (the lot in one) or a folder (a file per wafer)
    summary = export_lot(store, user, "L", kind, out)
    if kind in ("sinf", "tsk"):
        files = sorted(out.iterdir(), key=lambda f: int(f.stem.rsplit("_", 1)[1]))  # by store id
        assert summary["files"] == len(files) == 4 and all(f.suffix == f".{kind}" for f in files)
        maps = [m for f in files for m in read(f)]
    else:
        maps = read(out)
    finals = _finals(store, user, ids)
    assert len(maps) == 4
    for m, i, final in zip(maps[:3], ids, finals, strict=False):
        assert np.array_equal(m.grid, store.wafer(user, i).grid)
        assert np.array_equal(mask_from_inked(m), final)


def test_klarf_export_classifies_every_defect_by_its_dies_final_class(lot, tmp_path):
    store, user, ids = lot
    out = tmp_path / "lot.klarf"
    assert export_lot(store, user, "L", "klarf", out)["files"] == 1
    maps = read(out)
    finals = _finals(store, user, ids)
    assert [m.lot for m in maps] == ["L"] * 4
    for m, i, final in zip(maps[:3], ids, finals, strict=False):
        stored = store.wafer(user, i)
        assert np.array_equal(m.grid, stored.grid)
        # Synthetic wafers carry no inspection defects: one per failing die, of its class.
        assert len(m.defects) == stored.fail_dies
        assert [d.class_code for d in m.defects] == [int(final[d.row, d.col]) for d in m.defects]
        assert {d.class_code for d in m.defects} > {0}  # the annotated Loc square holds fails


def test_the_command_line_offers_every_export_kind():
    from waferseg_core.cli_store import EXPORT_KINDS
    from waferseg_core.exports import KINDS

    assert tuple(EXPORT_KINDS) == KINDS


def test_png_masks(lot, tmp_path):
    store, user, ids = lot
    out = tmp_path / "masks"
    assert export_lot(store, user, "L", "png", out)["files"] == 4
    files = sorted(out.iterdir(), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    finals = _finals(store, user, ids)
    for f, final in zip(files[:3], finals[:3], strict=True):
        data = f.read_bytes()
        assert np.array_equal(decode(data), final)
        assert text_chunks(data)["waferseg:lot"] == "L"


def test_bad_targets_write_nothing(lot, tmp_path, capsys):
    store, user, _ = lot
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="new or empty folder"):
        export_lot(store, user, "L", "png", full)
    with pytest.raises(InvalidInputError, match="file path, found a folder"):
        export_lot(store, user, "L", "csv", full)
    with pytest.raises(InvalidInputError, match="export kind must be one of"):
        export_lot(store, user, "L", "tiff", tmp_path / "x")
    with pytest.raises(InvalidInputError, match="holds no wafers"):
        export_lot(store, user, "nope", "csv", tmp_path / "x.csv")
    # A model that cannot load fails before anything is written.
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="expected an ONNX model"):
        export_lot(store, user, "L", "csv", tmp_path / "y.csv", model=str(bad))
    assert _outputs(tmp_path) == ["bad.onnx", "full"]
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    # A path the system refuses (here: under a file) is one line from the command, exit 2.
    url = store.engine.url.render_as_string(hide_password=False)
    code = main(["--store", url, "export", "csv", "--lot", "L", "--out", f"{full}/keep.txt/a.csv"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "keep.txt" in err and "Traceback" not in err


def test_failure_midway_leaves_no_partial_file(lot, tmp_path):
    store, user, _ = lot
    out = tmp_path / "lot.csv"

    def boom(done, total):
        if done == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        export_lot(store, user, "L", "csv", out, progress=boom)
    assert _outputs(tmp_path) == []


def test_export_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    make_reviewed_lot(url)[0].close()
    assert (
        main(["--store", url, "export", "csv", "--lot", "L", "--out", str(tmp_path / "a.csv")]) == 0
    )
    assert json.loads(capsys.readouterr().out)["wafers"] == 4
    assert main(["--store", url, "export", "png", "--lot", "L", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "new or empty folder" in err and err.count("\n") == 1
