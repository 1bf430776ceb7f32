"""Active-learning queries and similar-wafer search over the store's wafers.

The pool of a query is the wafers nobody annotated yet (status ``new``) of a lot or of the whole
store; what is annotated already counts as covered for the diversity strategies. Embeddings are
the model's pooled encoder features (an ONNX output), computed once per wafer and model and kept
in the store, so a search over an old lot costs a query, not a model run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Prediction, Predictor
from waferseg_core.ml.active import check_strategy, select, uncertainty_of
from waferseg_core.store.predict import cache_item
from waferseg_core.store.service import Store, UserRef

CHUNK = 256


def ensure_embeddings(
    store: Store, actor: UserRef, predictor: Predictor, wafer_ids: Sequence[int]
) -> dict[int, npt.NDArray[np.float32]]:
    """Embeddings of these wafers under the model; missing ones are computed and kept.

    Kept under the model's hash only when made with the model's own views (its max side).
    """
    own = predictor.own_views
    have = store.embeddings(actor, predictor.hash, wafer_ids) if own else {}
    missing = [i for i in wafer_ids if i not in have]
    for k in range(0, len(missing), CHUNK):
        ids = missing[k : k + CHUNK]
        preds = predictor.predict([store.wafer(actor, i) for i in ids])
        new = {i: p.embedding for i, p in zip(ids, preds, strict=True)}
        if own and actor.can("infer"):
            store.save_embeddings(actor, predictor.hash, new)
        have.update(new)
    return have


def similar(
    store: Store,
    actor: UserRef,
    predictor: Predictor,
    wafer_id: int,
    top: int = 10,
    *,
    other_lots: bool = False,
) -> list[dict[str, Any]]:
    """The ``top`` stored wafers most similar to one (cosine of embeddings), best first.

    ``other_lots`` leaves the wafer's own lot out: its lot-mates often share a signature, and
    an engineer looking for where else it happened wants the other lots.

    Raises:
        InvalidInputError: Unknown wafer or ``top`` below 1.
    """
    if top < 1:
        raise InvalidInputError(f"--top must be at least 1, found {top}")
    store.wafer(actor, wafer_id)  # raises for an unknown id
    rows = {r["id"]: r for r in store.list_wafers(actor, model_hash=predictor.hash)}
    emb = ensure_embeddings(store, actor, predictor, list(rows))
    own = rows[wafer_id]["lot"] if other_lots else None
    ids = [i for i in rows if i != wafer_id and (own is None or rows[i]["lot"] != own)]
    if not ids:
        return []
    mat = np.stack([emb[i] for i in ids]).astype(np.float64)
    q = emb[wafer_id].astype(np.float64)
    sims = mat @ q / np.maximum(np.linalg.norm(mat, axis=1) * np.linalg.norm(q), 1e-12)
    order = np.argsort(-sims, kind="stable")[:top]
    return [
        {
            "rank": k + 1,
            "wafer_id": ids[i],
            "lot": rows[ids[i]]["lot"],
            "wafer": rows[ids[i]]["wafer"],
            "similarity": round(float(sims[i]), 4),
            "pattern": rows[ids[i]]["pattern"],
            "status": rows[ids[i]]["status"],
        }
        for k, i in enumerate(order)
    ]


def query(
    store: Store,
    actor: UserRef,
    predictor: Predictor,
    strategy: str,
    budget: int,
    *,
    lot: str | None = None,
    checkpoint: str | None = None,
    diversity_weight: float = 0.4,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Pick wafers to annotate next and put them in the store's queue (replacing the old one).

    Args:
        store: The store.
        actor: Who queries (needs the infer right).
        predictor: The ONNX model for uncertainty and embeddings.
        strategy: One of :data:`waferseg_core.ml.active.STRATEGIES`.
        budget: How many wafers to queue.
        lot: Only this lot's wafers (default: every lot).
        checkpoint: A torch checkpoint of the same model, for ``bald`` (needs the train extra).
        diversity_weight: ``hybrid``'s share of diversity.
        seed: ``random``'s seed (and MC dropout's).

    Raises:
        InvalidInputError: Bad strategy or budget, no unannotated wafer, BALD without checkpoint.
    """
    check_strategy(strategy)
    if budget < 1:
        raise InvalidInputError(f"--budget must be at least 1, found {budget}")
    if strategy == "bald" and not checkpoint:
        raise InvalidInputError(
            "bald needs --checkpoint: the torch checkpoint (best_model.pt) of the model"
        )
    rows = store.list_wafers(actor, lot=lot)
    if lot is not None and not rows:
        raise InvalidInputError(f"lot {lot!r} holds no wafers (or does not exist)")
    pool = [r for r in rows if r["status"] == "new"]
    if not pool:
        raise InvalidInputError(
            f"expected unannotated wafers in {'lot ' + repr(lot) if lot else 'the store'}, "
            "found none"
        )
    pool_ids = [r["id"] for r in pool]
    wafers = [store.wafer(actor, i) for i in pool_ids]
    preds: list[Prediction] = []
    t0 = time.perf_counter()
    for k in range(0, len(wafers), CHUNK):
        preds += predictor.predict(wafers[k : k + CHUNK])
    ms = (time.perf_counter() - t0) * 1000  # the inference log's figure for this run
    # Kept under the model's hash only when made with the model's own views (its max side).
    if actor.can("infer") and predictor.own_views:
        store.save_embeddings(
            actor, predictor.hash, {i: p.embedding for i, p in zip(pool_ids, preds, strict=True)}
        )
        # What the lot view and the queue's Predicted column read: one-view predictions.
        if predictor.views == predictor.phases == 1:
            items = [cache_item(w, p) for w, p in zip(wafers, preds, strict=True)]
            store.cache_predictions(actor, predictor.hash, items, ms=ms)
    if strategy == "bald":
        from waferseg_core.ml.bald import bald  # torch: only here

        u = np.array(bald(str(checkpoint), wafers, seed=seed))
    else:
        u = uncertainty_of(strategy, preds)
    labelled_ids = [r["id"] for r in store.list_wafers(actor) if r["status"] != "new"]
    lab = ensure_embeddings(store, actor, predictor, labelled_ids) if labelled_ids else {}
    picks = select(
        strategy,
        budget,
        uncertainty=u,
        embeddings=np.stack([p.embedding for p in preds]),
        labelled_embeddings=np.stack(list(lab.values())) if lab else None,
        diversity_weight=diversity_weight,
        seed=seed,
    )
    store.queue_al(actor, strategy, [(pool_ids[p.index], p.score) for p in picks])
    return [
        {
            "rank": k + 1,
            "wafer_id": pool_ids[p.index],
            "lot": pool[p.index]["lot"],
            "wafer": pool[p.index]["wafer"],
            "strategy": strategy,
            "score": round(p.score, 5),
            "pattern": preds[p.index].pattern,
        }
        for k, p in enumerate(picks)
    ]
