"""Active-learning strategies by hand, BALD by MC dropout, queries and similar-wafer search."""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from waferseg_core.cli import main
from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Predictor
from waferseg_core.ml.active import STRATEGIES, bald_scores, select
from waferseg_core.ml.bald import bald
from waferseg_core.ml.model import create_model
from waferseg_core.ml.train import TrainConfig, _plain
from waferseg_core.store.al_ops import query, similar
from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer


def test_uncertainty_strategies_rank_by_score():
    u = np.array([0.1, 0.9, 0.5, 0.7])
    assert [p.index for p in select("entropy", 3, uncertainty=u)] == [1, 3, 2]
    assert [p.score for p in select("margin", 2, uncertainty=u)] == [0.9, 0.7]
    assert len(select("variation", 10, uncertainty=u)) == 4  # budget above the pool
    r1 = select("random", 3, uncertainty=u, seed=1)
    assert r1 == select("random", 3, uncertainty=u, seed=1) and len({p.index for p in r1}) == 3


def test_coreset_is_k_center_greedy_and_hybrid_mixes():
    # Pool on the unit circle at 0, 10, 90 and 180 degrees; the labelled wafer sits at 0.
    ang = np.radians([0, 10, 90, 180])
    emb = np.stack([np.cos(ang), np.sin(ang)], 1)
    lab = np.array([[1.0, 0.0]])
    # Farthest from 0 degrees: 180; then farthest from {0, 180}: 90; then 10.
    assert [p.index for p in select("coreset", 3, embeddings=emb, labelled_embeddings=lab)] == [
        3,
        2,
        1,
    ]
    u = np.array([0.0, 1.0, 0.0, 0.0])  # only the wafer at 10 degrees is uncertain
    only_u = select("hybrid", 1, uncertainty=u, embeddings=emb, diversity_weight=0.0)
    only_d = select(
        "hybrid", 1, uncertainty=u, embeddings=emb, labelled_embeddings=lab, diversity_weight=1.0
    )
    assert only_u[0].index == 1 and only_d[0].index == 3
    mixed = select("hybrid", 2, uncertainty=u, embeddings=emb, labelled_embeddings=lab)
    # By hand: the 10-degree wafer scores 0.6 * 1 + 0.4 * (1 - cos 10deg) / 2 = 0.603, the
    # 180-degree one 0.6 * 0 + 0.4 * 2 / 2 = 0.4; the uncertain one first, then the far one.
    assert [p.index for p in mixed] == [1, 3]
    assert mixed[0].score == pytest.approx(0.6 + 0.4 * (1 - math.cos(math.radians(10))) / 2)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"strategy": "greedy", "budget": 1}, "strategy must be one of"),
        ({"strategy": "entropy", "budget": 0}, "budget must be at least 1"),
        ({"strategy": "entropy", "budget": 1}, "needs the pool's uncertainty"),
        ({"strategy": "coreset", "budget": 1}, "needs the pool's embeddings"),
    ],
)
def test_select_rejects_bad_input(kwargs, needle):
    with pytest.raises(InvalidInputError, match=needle):
        select(**kwargs)


def test_bald_by_hand():
    on = np.ones((1, 1), bool)
    same = np.array([[[[0.7]], [[0.3]]]] * 4)  # (T=4, C=2, 1, 1): every pass agrees
    assert bald_scores(same, on) == pytest.approx(0.0, abs=1e-9)
    split = np.array([[[[1.0]], [[0.0]]], [[[0.0]], [[1.0]]]])  # two passes, opposite and sure
    assert bald_scores(split, on) == pytest.approx(math.log(2), abs=1e-6)


def _checkpoint(path, dropout):
    torch.manual_seed(0)
    model = create_model("resnet18-w0.25", dropout=dropout)
    cfg = TrainConfig(arch="resnet18-w0.25", dropout=dropout)
    torch.save({"model": model.state_dict(), "config": _plain(asdict(cfg))}, path)
    return path


def test_mc_dropout_bald(tmp_path):
    wafers = [generate_wafer(2, i).wafer for i in range(3)]
    none = bald(_checkpoint(tmp_path / "a.pt", 0.0), wafers, passes=4, device="cpu")
    assert none == pytest.approx([0.0] * 3, abs=1e-6)  # no dropout: every pass is the same
    some = bald(_checkpoint(tmp_path / "b.pt", 0.5), wafers, passes=4, device="cpu")
    assert all(s > 0 for s in some)


@pytest.fixture(scope="module")
def predictor():
    return Predictor()


@pytest.fixture
def pool(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    user = store.login()
    made = [generate_wafer(9, i) for i in range(12)]
    ids = store.import_lot(user, "P", [sw.wafer for sw in made])
    for wid, sw in zip(ids[:4], made[:4], strict=True):
        store.replace_annotations(user, wid, sw.mask, source="manual")
        store.set_status(user, wid, "annotated")
    copy = made[5].wafer.with_grid(made[5].wafer.grid.copy())
    copy.lot, copy.wafer_id = "Q", "twin"
    twin = store.import_lot(user, "Q", [copy])[0]
    yield store, user, ids, twin
    store.close()


def test_query_queues_unannotated_wafers(pool, predictor):
    store, user, ids, _ = pool
    rows = query(store, user, predictor, "entropy", 3, lot="P")
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(r["wafer_id"] in ids[4:] for r in rows)  # never an annotated wafer
    preds = predictor.predict([store.wafer(user, i) for i in ids[4:]])
    best = sorted(zip(ids[4:], preds, strict=True), key=lambda t: -t[1].uncertainty)[:3]
    assert [r["wafer_id"] for r in rows] == [i for i, _ in best]
    assert [q["wafer_id"] for q in store.al_queue(user)] == [r["wafer_id"] for r in rows]
    # The query cached its predictions, so the queue can show what the model sees in each wafer.
    shown = store.al_queue(user, predictor.hash)
    assert [q["predicted"] for q in shown] == [r["pattern"] for r in rows]
    for strategy in ("margin", "variation", "coreset", "hybrid", "random"):
        got = query(store, user, predictor, strategy, 2, lot="P")
        assert len(got) == 2 and {r["strategy"] for r in store.al_queue(user)} == {strategy}
    assert set(STRATEGIES) == {
        "entropy",
        "margin",
        "variation",
        "bald",
        "coreset",
        "hybrid",
        "random",
    }
    with pytest.raises(InvalidInputError, match="bald needs --checkpoint"):
        query(store, user, predictor, "bald", 2, lot="P")
    with pytest.raises(InvalidInputError, match="holds no wafers"):
        query(store, user, predictor, "entropy", 2, lot="nope")
    with pytest.raises(InvalidInputError, match="strategy must be one of entropy.*found 'greedy'"):
        query(store, user, predictor, "greedy", 2, lot="P")


def test_bald_query_through_the_store(pool, predictor, tmp_path):
    store, user, _, _ = pool
    ck = _checkpoint(tmp_path / "m.pt", 0.5)
    rows = query(store, user, predictor, "bald", 2, lot="P", checkpoint=str(ck))
    assert len(rows) == 2 and rows[0]["score"] >= rows[1]["score"] > 0


def test_similar_finds_the_twin_first(pool, predictor):
    store, user, ids, twin = pool
    rows = similar(store, user, predictor, ids[5], top=3)
    assert rows[0]["wafer_id"] == twin and rows[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["similarity"] >= rows[1]["similarity"]
    assert len(store.embeddings(user, predictor.hash)) == 13  # every wafer's, kept
    # Other lots only: the twin (lot Q) is all there is outside lot P.
    (only,) = similar(store, user, predictor, ids[5], top=3, other_lots=True)
    assert only["wafer_id"] == twin and only["lot"] == "Q"
    assert {r["lot"] for r in similar(store, user, predictor, twin, 5, other_lots=True)} == {"P"}
    with pytest.raises(InvalidInputError, match="no wafer with id"):
        similar(store, user, predictor, 9999)


def test_cli_al_and_similar(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = Store(url)
    user = store.login()
    ids = store.import_lot(user, "P", [generate_wafer(9, i).wafer for i in range(6)])
    store.close()
    base = ["--store", url]
    assert main([*base, "al", "query", "--lot", "P", "--strategy", "margin", "--budget", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["rank"] for x in lines] == [1, 2] and lines[0]["strategy"] == "margin"
    assert main([*base, "al", "list"]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["wafer_id"] for x in listed] == [x["wafer_id"] for x in lines]
    assert [x["predicted"] for x in listed] == [x["pattern"] for x in lines]  # shipped model's
    assert main([*base, "al", "list", "--model", str(tmp_path / "gone.onnx")]) == 2
    assert "expected an ONNX model file, found no file at" in capsys.readouterr().err
    assert main([*base, "similar", str(ids[0]), "--top", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main([*base, "similar", str(ids[0]), "--other-lots"]) == 0
    assert capsys.readouterr().out == ""  # one lot in the store: nothing outside it
    assert main([*base, "al", "query", "--all", "--strategy", "bald", "--budget", "2"]) == 2
    assert "bald needs --checkpoint" in capsys.readouterr().err
    assert main([*base, "similar", str(ids[0]), "--top", "0"]) == 2
    assert main([*base, "predict", "--lot", "P"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6
    assert main([*base, "predict"]) == 2
    assert "FILE... or --lot" in capsys.readouterr().err
