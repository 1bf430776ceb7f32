"""``waferseg lots``, ``wafers`` and ``jobs``: what a store holds, on both backends."""

import json

from waferseg_core.cli import main
from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_lots_and_wafers_list_what_the_store_holds(store_url, capsys, monkeypatch):
    store = Store(store_url)
    user = store.add_user(None, "ada", "admin", "pw")  # the first user of a shared store
    ids = store.import_lot(user, "L1", [generate_wafer(4, i).wafer for i in range(4)])
    store.import_lot(user, "L2", [generate_wafer(4, 10).wafer])
    store.set_status(user, ids[0], "annotated")
    store.set_status(user, ids[1], "reviewed")
    store.close()
    monkeypatch.setenv("WAFERSEG_PASSWORD", "pw")
    s = ("--store", store_url, "--user", "ada")
    code, rows, _ = run(capsys, *s, "lots")
    assert code == 0
    assert rows == [
        {"lot": "L1", "wafers": 4, "new": 2, "annotated": 1, "reviewed": 1},
        {"lot": "L2", "wafers": 1, "new": 1, "annotated": 0, "reviewed": 0},
    ]
    code, rows, _ = run(capsys, *s, "wafers", "--lot", "L1")
    assert code == 0 and [r["id"] for r in rows] == ids
    assert all(r["pattern"] is None and r["lot"] == "L1" for r in rows)  # not predicted yet
    code, predicted, _ = run(capsys, *s, "predict", "--lot", "L1")
    assert code == 0
    code, rows, _ = run(capsys, *s, "wafers", "--lot", "L1", "--worst-first")
    calls = sorted((p["pattern"], p["pattern_probability"]) for p in predicted)
    assert sorted((r["pattern"], round(r["pattern_probability"], 4)) for r in rows) == calls
    share = [r["fail_dies"] / r["dies"] for r in rows]
    assert share == sorted(share, reverse=True)
    want = rows[0]["pattern"]
    code, rows, _ = run(capsys, *s, "wafers", "--pattern", want)
    assert rows and {r["pattern"] for r in rows} == {want}
    assert sum(p["pattern"] == want for p in predicted) == len(rows)
    code, rows, _ = run(capsys, *s, "wafers", "--limit", "2")
    assert [r["id"] for r in rows] == ids[:2]
    code, rows, _ = run(capsys, *s, "wafers", "--status", "reviewed")
    assert [r["id"] for r in rows] == [ids[1]]
    code, rows, _ = run(capsys, *s, "wafers")
    assert len(rows) == 5
    # The least sure calls first (the store's test orders distinct probabilities); L2's wafer
    # has no call yet and comes last.
    code, rows, _ = run(capsys, *s, "wafers", "--least-sure-first")
    sure = [r["pattern_probability"] for r in rows[:4]]
    assert code == 0 and sure == sorted(sure) and rows[4]["lot"] == "L2"
    assert rows[4]["pattern_probability"] is None


def test_wafers_refuses_bad_filters_in_one_line(tmp_path, capsys):
    s = ("--store", f"sqlite:///{tmp_path / 's.sqlite'}")
    for argv, says in (
        (("--lot", "NOPE"), "expected a stored lot, found no lot 'NOPE'"),
        (("--pattern", "Blob"), "--pattern: expected one of Center, Donut"),
        (("--limit", "0"), "--limit must be 1 or more, found 0"),
        (("--worst-first", "--least-sure-first"), "not allowed with argument --worst-first"),
    ):
        code, rows, err = run(capsys, *s, "wafers", *argv)
        assert code == 2 and not rows and err.startswith("error: ") and err.count("\n") == 1
        assert says in err


def test_jobs_list_show_and_cancel(store_url, capsys, monkeypatch):
    store = Store(store_url)
    user = store.add_user(None, "ada", "admin", "pw")
    store.import_lot(user, "L", [generate_wafer(4, 0).wafer])
    infer = store.enqueue_job(user, {"lots": ["L"]}, kind="infer")
    train = store.enqueue_job(user, {"synth": 40, "epochs": 1})
    store.close()
    monkeypatch.setenv("WAFERSEG_PASSWORD", "pw")
    s = ("--store", store_url, "--user", "ada", "jobs")
    code, rows, _ = run(capsys, *s, "list")
    assert code == 0 and [(r["id"], r["kind"], r["status"]) for r in rows] == [
        (train, "train", "queued"),
        (infer, "infer", "queued"),
    ]
    assert rows[1]["config"] == {"lots": ["L"]} and rows[1]["created_by"] == "ada"
    code, rows, _ = run(capsys, *s, "cancel", str(train))
    assert code == 0 and rows == [{"job": train, "was": "queued", "status": "cancelled"}]
    code, rows, _ = run(capsys, *s, "list", "--status", "queued")
    assert [r["id"] for r in rows] == [infer]
    code, rows, _ = run(capsys, *s, "list", "--limit", "1")
    assert [r["id"] for r in rows] == [train]
    code, (shown,), _ = run(capsys, *s, "show", str(infer))
    assert shown["kind"] == "infer" and shown["status"] == "queued" and shown["epochs"] == []
    for argv, says in (
        (
            ("cancel", str(train)),
            f"job {train}: expected a queued or running job, found it cancelled",
        ),
        (("show", "999"), "no job with id 999"),
        (("list", "--limit", "0"), "--limit must be 1 or more, found 0"),
    ):
        code, rows, err = run(capsys, *s, *argv)
        assert code == 2 and not rows and err.count("\n") == 1 and says in err


def test_patterns_counts_each_lots_calls_and_annotations(tmp_path, capsys):
    from collections import Counter

    from tests.core.reviewed_lot import make_reviewed_lot
    from waferseg_core.inference import Predictor
    from waferseg_core.patterns import pattern_from_mask
    from waferseg_core.store.review_ops import wafer_masks

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store, ids = make_reviewed_lot(url)
    user = store.login()
    store.import_lot(user, "M", [generate_wafer(9, i).wafer for i in range(3)])
    wafers = [store.wafer(user, i) for i in ids]
    finals = [wafer_masks(store, user, i).final() for i in ids]
    store.close()
    code, rows, _ = run(capsys, "--store", url, "patterns", "--lot", "L")
    calls = Counter(p.pattern for p in Predictor().predict(wafers))
    annotated = Counter(
        pattern_from_mask(f, w.grid) for f, w in zip(finals, wafers, strict=True) if f is not None
    )
    assert code == 0 and rows == [
        {"lot": "L", "wafers": 4, "model": dict(calls), "annotated": dict(annotated)}
    ]
    code, rows, _ = run(capsys, "--store", url, "patterns")
    assert [(r["lot"], r["wafers"]) for r in rows] == [("L", 4), ("M", 3)]
    code, rows, err = run(capsys, "--store", url, "patterns", "--lot", "NOPE")
    assert code == 2 and rows == [] and "found no lot 'NOPE'" in err
