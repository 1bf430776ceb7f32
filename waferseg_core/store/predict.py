"""Predictions of stored wafers: the store's cache first, the model for the rest.

One loop for the app's worker thread, exports and active-learning queries, so every caller
caches what it computes and none recomputes what is cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Prediction, Predictor
from waferseg_core.store.service import Store, UserRef
from waferseg_core.wafer import WaferMap

CHUNK = 32


@dataclass
class StoredPrediction:
    """A stored wafer with its prediction; probability and entropy only when freshly computed."""

    wafer_id: int
    wafer: WaferMap
    mask: npt.NDArray[np.uint8]
    pattern: str
    patterns: list[str]
    pattern_probability: float
    confidence: float
    uncertainty: float
    probability: npt.NDArray[np.float32] | None = None
    entropy: npt.NDArray[np.float32] | None = None
    cached: bool = False


def cache_item(wafer: WaferMap, prediction: Prediction) -> dict[str, Any]:
    """What :meth:`Store.cache_predictions` keeps of one wafer's prediction."""
    return {
        "wafer_hash": wafer.content_hash,
        "mask": prediction.mask,
        "pattern": prediction.pattern,
        "patterns": prediction.patterns,
        "pattern_probability": prediction.pattern_probability,
        "confidence": prediction.confidence,
        "uncertainty": prediction.uncertainty,
    }


def predict_stored(
    store: Store,
    actor: UserRef,
    predictor: Predictor,
    wafer_ids: Sequence[int],
    *,
    chunk: int = CHUNK,
) -> Iterator[list[StoredPrediction]]:
    """Predictions chunk by chunk, in ``wafer_ids`` order; new ones are cached when allowed.

    Raises:
        InvalidInputError: A predictor averaging several views or phases, or overriding the
            model's max side: the cache is keyed by model only, and the model's own one-view
            predictions are what every reader of it expects.
    """
    for name in ("views", "phases"):
        if getattr(predictor, name) != 1:
            raise InvalidInputError(
                f"stored predictions are one view: expected a predictor with {name}=1, "
                f"found {name}={getattr(predictor, name)}"
            )
    if not predictor.own_views:
        own = predictor.model_max_side or "the default"
        raise InvalidInputError(
            f"stored predictions use the model's own views: expected its max side ({own}), "
            f"found max_side={predictor.max_side}"
        )
    for k in range(0, len(wafer_ids), chunk):
        ids = wafer_ids[k : k + chunk]
        maps = [store.wafer(actor, i) for i in ids]
        out: list[StoredPrediction | None] = [None] * len(ids)
        todo: list[int] = []
        for j, w in enumerate(maps):
            hit = store.cached_prediction(actor, w.content_hash, predictor.hash)
            if hit is None:
                todo.append(j)
                continue
            mask = np.frombuffer(hit["mask"], np.uint8).reshape(w.shape)
            out[j] = StoredPrediction(
                ids[j],
                w,
                mask,
                hit["pattern"],
                list(hit["patterns"]),
                hit["pattern_probability"],
                hit["confidence"],
                hit["uncertainty"],
                cached=True,
            )
        if todo:
            t = time.perf_counter()
            preds = predictor.predict([maps[j] for j in todo])
            items: list[dict[str, Any]] = []
            for j, p in zip(todo, preds, strict=True):
                out[j] = StoredPrediction(
                    ids[j],
                    maps[j],
                    p.mask,
                    p.pattern,
                    p.patterns,
                    p.pattern_probability,
                    p.confidence,
                    p.uncertainty,
                    p.probability,
                    p.entropy,
                )
                items.append(cache_item(maps[j], p))
            if actor.can("infer"):
                ms = (time.perf_counter() - t) * 1000
                store.cache_predictions(actor, predictor.hash, items, ms=ms)
        yield [r for r in out if r is not None]


def resolve_model(store: Store, actor: UserRef, explicit: str | None = None) -> str | None:
    """The model to use: the one named, else the store's active model, else None (the shipped one).

    Raises:
        InvalidInputError: The active model's file is missing.
    """
    from waferseg_core.errors import InvalidInputError

    if explicit:
        return explicit
    for mv in store.models(actor):
        if mv["active"]:
            from pathlib import Path

            if not Path(mv["file_path"]).is_file():
                raise InvalidInputError(
                    f"expected the active model {mv['name']!r} at {mv['file_path']}, "
                    "found no file; promote another model or pass --model"
                )
            return str(mv["file_path"])
    return None
