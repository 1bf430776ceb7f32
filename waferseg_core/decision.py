"""The wafer's pattern from its predicted mask and the wafer-level head, and its calibration.

The candidates are the classes holding at least ``CANDIDATE_DIES`` dies of the predicted mask, so
the pattern always agrees with the mask the user sees; with no candidate the wafer is ``none``.
Among the candidates the head's logit plus a per-class **offset** decides (ties: more dies).
The offsets default to zero (the head's most probable candidate). A model may carry offsets in
its ONNX metadata (``pattern_offsets``, JSON): they are tuned on labelled wafers the model did
not train on (``tune_offsets``, ``bench/calibrate_patterns.py``), because the head learnt its
probabilities from class-balanced draws of synthetic and real wafers, not from a fab's own mix
of patterns, and which candidate wins decides a wafer's call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import NONE_PATTERN, PATTERN_CLASSES, WAFER_LABELS
from waferseg_core.errors import InvalidInputError

CANDIDATE_DIES = 2
OFFSETS_KEY = "pattern_offsets"  # the ONNX metadata entry holding a model's offsets
PATTERNS: tuple[str, ...] = tuple(c.name for c in PATTERN_CLASSES)
# Coordinate ascent visits these values per class; a bounded grid keeps one rare class from
# taking an offset that only its few wafers justify.
GRID: tuple[float, ...] = tuple(float(v) for v in np.arange(-3.0, 3.01, 0.5))


def _logit(p: float) -> float:
    # Clipped only where float32 saturates, so a distinct probability keeps a distinct logit.
    p = min(max(p, 1e-15), 1.0 - 1e-15)
    return math.log(p / (1.0 - p))


def choose_pattern(
    class_dies: Mapping[str, int],
    wafer_probs: Mapping[str, float],
    offsets: Mapping[str, float] | None = None,
) -> str:
    """The wafer's pattern: the candidate with the highest head logit plus its offset.

    Args:
        class_dies: Dies of the predicted mask per pattern class.
        wafer_probs: The head's probability per pattern class.
        offsets: Added to each class's logit (missing: 0).
    """
    offsets = offsets or {}
    candidates = [n for n in PATTERNS if class_dies.get(n, 0) >= CANDIDATE_DIES]
    if not candidates:
        return NONE_PATTERN
    return max(
        candidates,
        key=lambda n: (_logit(wafer_probs[n]) + offsets.get(n, 0.0), class_dies.get(n, 0)),
    )


def parse_offsets(text: str, where: str) -> dict[str, float]:
    """Offsets from their JSON text (a model's metadata), checked.

    Raises:
        InvalidInputError: Not a JSON object of pattern names to finite numbers.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict):
        raise InvalidInputError(
            f"{where}: expected {OFFSETS_KEY} as a JSON object of pattern offsets, "
            f"found {text[:60]!r}"
        )
    out: dict[str, float] = {}
    for name, value in raw.items():
        if name not in PATTERNS:
            raise InvalidInputError(
                f"{where}: expected {OFFSETS_KEY} keys among {', '.join(PATTERNS)}, found {name!r}"
            )
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise InvalidInputError(
                f"{where}: expected a finite number as the {name} offset, found {value!r}"
            )
        out[name] = float(value)
    return out


@dataclass(frozen=True)
class Scored:
    """Labelled wafers' head logits and mask candidates, ready to try offsets on."""

    truth: npt.NDArray[np.int64]  # index into WAFER_LABELS
    logits: npt.NDArray[np.float64]  # (wafers, patterns)
    dies: npt.NDArray[np.float64]  # (wafers, patterns)

    @classmethod
    def of(
        cls,
        truths: Sequence[str],
        class_dies: Sequence[Mapping[str, int]],
        wafer_probs: Sequence[Mapping[str, float]],
    ) -> Scored:
        """From each wafer's true pattern and its prediction's die counts and probabilities."""
        return cls(
            np.array([WAFER_LABELS.index(t) for t in truths], np.int64),
            np.array([[_logit(p[n]) for n in PATTERNS] for p in wafer_probs], np.float64),
            np.array([[d.get(n, 0) for n in PATTERNS] for d in class_dies], np.float64),
        )

    @classmethod
    def join(cls, parts: Sequence[Scored]) -> Scored:
        """The wafers of several sets (e.g. the out-of-fold predictions of every fold) as one."""
        return cls(
            np.concatenate([p.truth for p in parts]),
            np.concatenate([p.logits for p in parts]),
            np.concatenate([p.dies for p in parts]),
        )

    def decide(self, offsets: Mapping[str, float]) -> npt.NDArray[np.int64]:
        """Each wafer's pattern index under ``offsets`` (as :func:`choose_pattern` decides)."""
        off = np.array([offsets.get(n, 0.0) for n in PATTERNS])
        score = np.where(self.dies >= CANDIDATE_DIES, self.logits + off, -np.inf)
        top = score.max(1, keepdims=True)
        # Among equal scores the most dies win, the first class on a tie of those too: compared
        # exactly, since a die-count bonus added to the score outweighed logits 1e-12 apart.
        best = np.where(score == top, self.dies, -1.0).argmax(1)
        none = ~np.isfinite(top[:, 0])
        return np.where(none, WAFER_LABELS.index(NONE_PATTERN), best).astype(np.int64)

    def macro_f1(self, offsets: Mapping[str, float]) -> float:
        """Macro-F1 over the wafer classes present in truth or decision."""
        return macro_f1(self.truth, self.decide(offsets))


def macro_f1(truth: npt.NDArray[np.int64], guess: npt.NDArray[np.int64]) -> float:
    """Macro-F1 over the classes in the truth (as :func:`metrics.wafer_report`, unrounded)."""
    k = len(WAFER_LABELS)
    conf = np.bincount(truth * k + guess, minlength=k * k).reshape(k, k)
    tp = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1)
    present = conf.sum(1) > 0
    return float((2 * tp[present] / denom[present]).mean()) if present.any() else 0.0


def tune_offsets(
    scored: Scored, grid: Sequence[float] = GRID, rounds: int = 3
) -> tuple[dict[str, float], float]:
    """Offsets that maximise macro-F1 on ``scored``, and that macro-F1 (coordinate ascent).

    Each round tries every grid value for each class in turn and keeps a value only when it
    raises the score, so the all-zero start (the plain head) is kept unless something beats it.
    """
    offsets = dict.fromkeys(PATTERNS, 0.0)
    best = scored.macro_f1(offsets)
    for _ in range(rounds):
        changed = False
        for name in PATTERNS:
            for value in grid:
                trial = {**offsets, name: float(value)}
                score = scored.macro_f1(trial)
                if score > best + 1e-12:
                    best, offsets, changed = score, trial, True
        if not changed:
            break
    return {n: v for n, v in offsets.items() if v}, best
