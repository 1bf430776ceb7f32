"""ONNX Runtime inference: per-die classes, probabilities, confidence, entropy and the pattern.

No torch here. Wafers more than ``coarse.MAX_SIDE`` dies across are seen at a coarser die scale
and every die takes the scores interpolated between the cells around it
(:mod:`waferseg_core.coarse`). Wafers are grouped into buckets by padded size and run in
batches; results are cached by (wafer content hash, model hash). One ``Predictor`` may be
shared by threads: ONNX Runtime sessions are thread-safe and the cache takes a lock.
``views`` above 1 averages the class probabilities over flipped and turned views of each wafer
(:mod:`waferseg_core.views`): steadier outlines for that many times the time; the embedding
stays the plain view's. ``phases`` above 1 does the same over block grids moved by half a block
on wafers seen at a coarser scale (:func:`waferseg_core.coarse.phase_shifts`): finer outlines on
large wafers, for that many times their time; small wafers are untouched.

The wafer's pattern agrees with the mask the user sees: the candidates are the classes holding
at least ``decision.CANDIDATE_DIES`` dies of the predicted mask, and among them the wafer-level
head picks (its logits plus the model's calibrated offsets, :mod:`waferseg_core.decision`); with
no candidate the wafer is ``none``. ``patterns`` lists every class that passes the mask thresholds
of :mod:`waferseg_core.patterns` (mixed-type wafers list several). ``pattern_probability`` is the
head's probability of the pattern called, the wafer's confidence in its call; ``confidence`` is
the mean over the wafer's dies of each die's class probability, background dies included.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from waferseg_core import views as d4
from waferseg_core.classes import CLASSES, NONE_PATTERN, WAFER_LABELS
from waferseg_core.coarse import (
    LEAST_MAX_SIDE,
    check_phases,
    coarsen,
    interpolate,
    phase_shifts,
    shifted,
    view,
)
from waferseg_core.decision import OFFSETS_KEY, choose_pattern, parse_offsets
from waferseg_core.errors import InvalidInputError
from waferseg_core.modelio import encode, padded_size
from waferseg_core.patterns import class_die_counts, patterns_from_counts
from waferseg_core.wafer import WaferMap

MAX_SIDE_KEY = "max_side"  # model metadata: the coarse view's max side it was trained with
INT8 = ".int8.onnx"  # a model's static int8 version sits beside it: X.onnx -> X.int8.onnx


def model_files(path: Path) -> dict[str, Path]:
    """A model's fp32 file and its int8 version, named by the one given (existing or not)."""
    if path.name.endswith(INT8):
        return {"fp32": path.with_name(path.name[: -len(INT8)] + ".onnx"), "int8": path}
    return {"fp32": path, "int8": path.with_name(path.stem + INT8)}


MODELS = Path(__file__).resolve().parent.parent / "resources" / "models"
DEFAULT_FP32 = MODELS / "waferseg-default.onnx"  # the trained model: scores, --init
# What the app and the commands run: its static int8 version, shipped because its per-die
# argmax agrees with fp32 on >= 99.9% of validation dies (resources/models/MODEL_CARD.md).
_SHIPPED_INT8 = model_files(DEFAULT_FP32)["int8"]
DEFAULT_MODEL = _SHIPPED_INT8 if _SHIPPED_INT8.is_file() else DEFAULT_FP32


def model_file(model: str | Path | None) -> Path:
    """The ONNX file to run: ``model``, else the shipped default.

    Raises:
        InvalidInputError: No file is there.
    """
    path = Path(model) if model else DEFAULT_MODEL
    if not path.is_file():
        raise InvalidInputError(f"expected an ONNX model file, found no file at {path}")
    return path


@dataclass
class Prediction:
    """What the model says about one wafer."""

    mask: npt.NDArray[np.uint8]
    probability: npt.NDArray[np.float32]  # of the chosen class, per die
    entropy: npt.NDArray[np.float32]  # per die, nats
    confidence: float  # mean probability of the chosen class over the wafer's dies
    uncertainty: float  # mean entropy over the wafer's dies
    pattern: str
    # The wafer head's probability of ``pattern``: how sure the model is of the wafer's call.
    # ``confidence`` is near 1 on almost every wafer (background dies dominate the mean).
    pattern_probability: float
    patterns: list[str]
    class_dies: dict[str, int]
    wafer_probs: dict[str, float]
    embedding: npt.NDArray[np.float32]
    margin: float = 1.0  # mean gap between the two likeliest classes over the wafer's dies
    ms: float = 0.0
    model_hash: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class _Raw:
    """The model's outputs for one wafer.

    ``seg`` holds class logits (classes, rows, cols) of the grid the model saw, or, once
    interpolated, of the wafer's dies.
    """

    seg: npt.NDArray[np.float32]
    wafer_logits: npt.NDArray[np.float32]
    emb: npt.NDArray[np.float32]
    ms: float


F = TypeVar("F", np.float32, np.float64)


def _softmax(z: npt.NDArray[F]) -> npt.NDArray[F]:
    """Softmax over the class axis (the first), shifted so that no exponent overflows."""
    e = np.exp(z - z.max(0, keepdims=True))
    out: npt.NDArray[F] = e / e.sum(0, keepdims=True)
    return out


def _sigmoid(z: npt.NDArray[F]) -> npt.NDArray[F]:
    """The logistic function, written with tanh so that it does not overflow."""
    out: npt.NDArray[F] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _view_probs(
    seg: npt.NDArray[np.float32], grid: npt.NDArray[np.uint8], t: int
) -> npt.NDArray[np.float64]:
    """Class probabilities from view ``t``'s seg logits, back in the grid's own orientation."""
    rows, cols = d4.apply(grid, t).shape
    return d4.undo(_softmax(seg[:, :rows, :cols].astype(np.float64)), t)


def _mean_logits(
    probs: npt.NDArray[np.float64], wafer: npt.NDArray[np.float64], n: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Logits whose softmax and sigmoid give back the means of ``n`` summed probabilities."""
    mean = np.clip(probs / n, 1e-12, 1.0)
    w = np.clip(wafer / n, 1e-7, 1.0 - 1e-7)
    return np.log(mean).astype(np.float32), np.log(w / (1.0 - w)).astype(np.float32)


def decide_pattern(
    mask: npt.NDArray[np.uint8],
    grid: npt.NDArray[np.uint8],
    wafer_probs: npt.NDArray[np.float32],
    offsets: Mapping[str, float] | None = None,
) -> tuple[str, list[str]]:
    """(pattern, patterns) from a predicted mask and the wafer head's label probabilities."""
    counts = class_die_counts(mask, grid)
    return decide_from_counts(counts, int(np.count_nonzero(grid)), wafer_probs, offsets)


def decide_from_counts(
    counts: Sequence[int],
    wafer_dies: int,
    wafer_probs: npt.NDArray[np.float32],
    offsets: Mapping[str, float] | None = None,
) -> tuple[str, list[str]]:
    """``decide_pattern`` from the mask's dies per class id and the wafer's die count."""
    dies = {CLASSES[i].name: counts[i] for i in range(1, len(counts))}
    probs = {name: float(p) for name, p in zip(WAFER_LABELS, wafer_probs, strict=False)}
    best = choose_pattern(dies, probs, offsets)
    if best == NONE_PATTERN:
        return NONE_PATTERN, []
    listed = patterns_from_counts(counts, wafer_dies)
    if best not in listed:
        listed = [best, *listed]
    return best, listed


def _at_dies(
    out: _Raw,
    seen: tuple[npt.NDArray[np.uint8], int],
    shape: tuple[int, int],
    shift: tuple[int, int],
) -> _Raw:
    """``out`` with its class scores at the wafer's dies (``shape``), the ``shift`` undone.

    ``seen`` is the grid the model saw and its reduction factor; the grid was made from the
    wafer after ``shift`` rows and columns of no die at its top and left.
    """
    g, k = seen
    dr, dc = shift
    seg = interpolate(
        out.seg[:, : g.shape[0], : g.shape[1]], k, (shape[0] + dr, shape[1] + dc), g > 0
    )
    return replace(out, seg=seg[:, dr:, dc:])


def _max_side(meta: Mapping[str, str], path: str) -> int | None:
    """The ``max_side`` a model was trained with (None: not recorded, the default applies).

    Raises:
        InvalidInputError: The entry is not a whole number of dies, at least the least a
            training run may use (``coarse.LEAST_MAX_SIDE``).
    """
    value = meta.get(MAX_SIDE_KEY)
    if value is None:
        return None
    if not value.isdigit() or int(value) < LEAST_MAX_SIDE:
        raise InvalidInputError(
            f"{path}: metadata {MAX_SIDE_KEY} must be a whole number of dies "
            f">= {LEAST_MAX_SIDE}, found {value!r}"
        )
    return int(value)


def file_hash(path: Path) -> str:
    """SHA-256 of a model file (the cache key and the model's identity in the store)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Predictor:
    """An ONNX model ready to segment wafers.

    Args:
        model: Path of the ``.onnx`` file (default: the shipped model).
        threads: Intra-op threads (0: ONNX Runtime's default).
        cache_size: Predictions kept in memory (LRU).
        views: Views averaged per wafer: 1, 2, 4 or 8 (:mod:`waferseg_core.views`).
        phases: Block grids averaged per large wafer: 1, 2 or 4 (:mod:`waferseg_core.coarse`).
        max_side: Wafers more than this many dies across are seen in blocks; default: the
            model's own (its ``max_side`` metadata, written by training), else
            ``coarse.MAX_SIDE`` at the time of each call.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int = 0,
        cache_size: int = 4096,
        views: int = 1,
        phases: int = 1,
        max_side: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.views = d4.check(views)
        self.phases = check_phases(phases)
        path = model_file(model)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for a corrupt file
            raise InvalidInputError(
                f"{path}: expected an ONNX model, ONNX Runtime says: {exc}"
            ) from None
        self.path = path
        self.hash = file_hash(path)
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        # Calibrated per-class offsets of the pattern decision (none: the head's plain choice).
        self.offsets = parse_offsets(meta[OFFSETS_KEY], str(path)) if OFFSETS_KEY in meta else {}
        self.model_max_side = _max_side(meta, str(path))  # what the file records (None: 96)
        self.max_side = max_side if max_side is not None else self.model_max_side
        self._cache: OrderedDict[str, Prediction] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def own_views(self) -> bool:
        """True when it shows the model the views it was trained on (its own max side).

        What the store keeps under the model's hash (predictions, embeddings) is made so.
        """
        return self.max_side == self.model_max_side

    def raw(self, batch: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], ...]:
        """The model's outputs (seg logits, wafer logits, embedding) for an encoded batch."""
        outs = self.session.run(None, {self.input_name: batch})
        return tuple(np.asarray(o, dtype=np.float32) for o in outs)

    def predict(self, wafers: Sequence[WaferMap], batch_size: int = 32) -> list[Prediction]:
        """Predictions in input order (cached ones are not recomputed)."""
        results: list[Prediction | None] = [None] * len(wafers)
        seen: dict[int, tuple[npt.NDArray[np.uint8], int]] = {}  # the grid the model sees, k
        with self._lock:
            for i, w in enumerate(wafers):
                hit = self._cache.get(w.content_hash)
                if hit is not None:
                    self._cache.move_to_end(w.content_hash)
                    results[i] = hit
                else:
                    seen[i] = view(w.grid, self.max_side)
        outs = self._outputs(seen, batch_size)
        dies = {i: _at_dies(out, seen[i], wafers[i].grid.shape, (0, 0)) for i, out in outs.items()}
        if self.phases > 1:
            dies = self._phased(wafers, seen, dies, batch_size)
        for i, out in dies.items():
            results[i] = self._decode(wafers[i], out.seg, out.wafer_logits, out.emb, out.ms)
        with self._lock:
            for w, r in zip(wafers, results, strict=True):
                assert r is not None
                self._cache[w.content_hash] = r
                self._cache.move_to_end(w.content_hash)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return [r for r in results if r is not None]

    def _outputs(
        self, seen: dict[int, tuple[npt.NDArray[np.uint8], int]], batch_size: int
    ) -> dict[int, _Raw]:
        """The model's outputs per wafer for the grids it sees, averaged over the views."""
        return (
            self._run(seen, 0, batch_size) if self.views == 1 else self._averaged(seen, batch_size)
        )

    def _phased(
        self,
        wafers: Sequence[WaferMap],
        seen: dict[int, tuple[npt.NDArray[np.uint8], int]],
        first: dict[int, _Raw],
        batch_size: int,
    ) -> dict[int, _Raw]:
        """``first`` (at the dies) with probabilities averaged over the block phases.

        Only wafers seen at a coarser scale have other phases; the embedding stays the plain
        grid's.
        """
        big = [i for i, (_, k) in seen.items() if k > 1]
        probs = {i: _softmax(first[i].seg.astype(np.float64)) for i in big}
        wafer = {i: _sigmoid(first[i].wafer_logits.astype(np.float64)) for i in big}
        ms = {i: first[i].ms for i in big}
        for j in range(1, self.phases):
            shifts = {i: phase_shifts(seen[i][1], self.phases)[j] for i in big}
            moved = {
                i: (coarsen(shifted(wafers[i].grid, shifts[i]), seen[i][1]), seen[i][1])
                for i in big
            }
            for i, raw in self._outputs(moved, batch_size).items():
                r = _at_dies(raw, moved[i], wafers[i].grid.shape, shifts[i])
                probs[i] += _softmax(r.seg.astype(np.float64))
                wafer[i] += _sigmoid(r.wafer_logits.astype(np.float64))
                ms[i] += r.ms
        out = dict(first)
        for i in big:
            seg, wafer_logits = _mean_logits(probs[i], wafer[i], self.phases)
            out[i] = _Raw(seg, wafer_logits, first[i].emb, ms[i])
        return out

    def _run(
        self, seen: dict[int, tuple[npt.NDArray[np.uint8], int]], t: int, batch_size: int
    ) -> dict[int, _Raw]:
        """The model's outputs per wafer for view ``t`` of its grid, batched by padded size."""
        todo: dict[tuple[int, int], list[int]] = {}
        for i, (g, _) in seen.items():
            rows, cols = d4.apply(g, t).shape
            todo.setdefault((padded_size(rows), padded_size(cols)), []).append(i)
        out: dict[int, _Raw] = {}
        for size, idx_all in todo.items():
            for n in range(0, len(idx_all), batch_size):
                idx = idx_all[n : n + batch_size]
                t0 = time.perf_counter()
                batch = np.stack([encode(d4.apply(seen[i][0], t), size) for i in idx])
                seg, wafer_logits, emb = self.raw(batch)
                ms = (time.perf_counter() - t0) * 1000 / len(idx)
                for j, i in enumerate(idx):
                    out[i] = _Raw(seg[j], wafer_logits[j], emb[j], ms)
        return out

    def _averaged(
        self, seen: dict[int, tuple[npt.NDArray[np.uint8], int]], batch_size: int
    ) -> dict[int, _Raw]:
        """As :meth:`_run` for view 0, with class and wafer probabilities averaged over views."""
        plain = self._run(seen, 0, batch_size)
        probs = {i: _view_probs(r.seg, seen[i][0], 0) for i, r in plain.items()}
        wafer = {i: _sigmoid(r.wafer_logits.astype(np.float64)) for i, r in plain.items()}
        ms = {i: r.ms for i, r in plain.items()}
        for t in d4.ORDER[1 : self.views]:
            for i, r in self._run(seen, t, batch_size).items():
                probs[i] = probs[i] + _view_probs(r.seg, seen[i][0], t)
                wafer[i] = wafer[i] + _sigmoid(r.wafer_logits.astype(np.float64))
                ms[i] += r.ms
        out: dict[int, _Raw] = {}
        for i, r in plain.items():
            seg, wafer_logits = _mean_logits(probs[i], wafer[i], self.views)
            out[i] = _Raw(seg, wafer_logits, r.emb, ms[i])
        return out

    def _decode(
        self,
        w: WaferMap,
        seg: npt.NDArray[np.float32],
        wafer_logits: npt.NDArray[np.float32],
        emb: npt.NDArray[np.float32],
        ms: float,
    ) -> Prediction:
        prob = _softmax(seg[:, : w.rows, : w.cols])
        mask = prob.argmax(0).astype(np.uint8)
        on = w.grid > 0
        mask[~on] = 0
        pmax = prob.max(0).astype(np.float32)
        ent = (-(prob * np.log(np.clip(prob, 1e-12, 1.0))).sum(0)).astype(np.float32)
        top2 = np.partition(prob, -2, axis=0)[-2:]
        gap = top2[1] - top2[0]
        pmax[~on] = 0
        ent[~on] = 0
        wafer_probs = _sigmoid(wafer_logits)
        counts = class_die_counts(mask, w.grid)
        pattern, patterns = decide_from_counts(counts, int(on.sum()), wafer_probs, self.offsets)
        return Prediction(
            mask=mask,
            probability=pmax,
            entropy=ent,
            confidence=float(pmax[on].mean()) if on.any() else 0.0,
            uncertainty=float(ent[on].mean()) if on.any() else 0.0,
            pattern=pattern,
            pattern_probability=float(wafer_probs[WAFER_LABELS.index(pattern)]),
            patterns=patterns,
            class_dies={CLASSES[i].name: counts[i] for i in range(1, len(counts)) if counts[i]},
            wafer_probs={name: float(p) for name, p in zip(WAFER_LABELS, wafer_probs, strict=True)},
            embedding=emb.astype(np.float32),
            margin=float(gap[on].mean()) if on.any() else 1.0,
            ms=ms,
            model_hash=self.hash,
        )
