"""Active-learning query strategies: which unannotated wafers to annotate next.

numpy only (no torch), so the app runs every strategy but BALD in-process on the ONNX model's
outputs; BALD's MC-dropout passes live in :mod:`waferseg_core.ml.bald`. Every uncertainty is a
wafer mean over its dies, higher = more worth annotating:

- ``entropy``: mean predictive entropy (nats);
- ``margin``: 1 - mean gap between the two likeliest classes;
- ``variation``: variation ratio, 1 - mean probability of the chosen class;
- ``bald``: mutual information between prediction and weights (MC dropout);
- ``coreset``: k-center greedy on embeddings (each pick the wafer farthest from everything
  annotated or already picked: coverage, not uncertainty);
- ``hybrid``: greedy picks by ``w_u * uncertainty + w_d * distance``, both scaled to 0-1
  (default 60% entropy, 40% diversity), distances updated after every pick;
- ``random``: the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Prediction

STRATEGIES = ("entropy", "margin", "variation", "bald", "coreset", "hybrid", "random")
UNCERTAINTIES = ("entropy", "margin", "variation", "bald")


def check_strategy(name: str) -> None:
    """Refuse a name outside :data:`STRATEGIES` with the one wording every caller shows.

    Raises:
        InvalidInputError: ``name`` is not a strategy.
    """
    if name not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}, found {name!r}")


@dataclass(frozen=True)
class Pick:
    """One queried wafer: its position in the pool and the score that chose it."""

    index: int
    score: float


def bald_scores(mc_probs: npt.NDArray[np.floating], on: npt.NDArray[np.bool_]) -> float:
    """BALD of one wafer from T Monte-Carlo softmax maps (T, C, H, W), averaged over its dies."""
    p = np.clip(mc_probs, 1e-12, 1.0)
    mean = p.mean(0)
    h_mean = -(mean * np.log(mean)).sum(0)
    mean_h = -(p * np.log(p)).sum(1).mean(0)
    mi = h_mean - mean_h
    return float(mi[on].mean()) if on.any() else 0.0


def _unit(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    x = np.asarray(x, np.float64)
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _normalise(e: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    e = np.asarray(e, np.float64)
    n = np.linalg.norm(e, axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = e / np.maximum(n, 1e-12)
    return out


def _min_distances(
    pool: npt.NDArray[np.float64], labelled: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Cosine distance of each pool wafer to its nearest labelled one (1 when none is labelled)."""
    if labelled.shape[0] == 0:
        return np.ones(pool.shape[0])
    d: npt.NDArray[np.float64] = np.full(pool.shape[0], np.inf)
    for k in range(0, labelled.shape[0], 4096):  # bounded memory on big labelled sets
        d = np.minimum(d, (1.0 - pool @ labelled[k : k + 4096].T).min(1))
    return np.clip(d, 0.0, 2.0).astype(np.float64)


def greedy(
    uncertainty: npt.NDArray[np.floating] | None,
    embeddings: npt.NDArray[np.floating],
    labelled: npt.NDArray[np.floating],
    budget: int,
    diversity_weight: float,
) -> list[Pick]:
    """Greedy picks by (1 - w) * uncertainty + w * distance to the annotated and picked wafers."""
    pool = _normalise(embeddings)
    lab = _normalise(labelled) if labelled.size else np.zeros((0, pool.shape[1]))
    dist = _min_distances(pool, lab)
    u = _unit(uncertainty) if uncertainty is not None else np.zeros(pool.shape[0])
    taken = np.zeros(pool.shape[0], bool)
    picks = []
    for _ in range(min(budget, pool.shape[0])):
        score = (1 - diversity_weight) * u + diversity_weight * (dist / max(dist.max(), 1e-12))
        score[taken] = -np.inf
        i = int(np.argmax(score))
        picks.append(Pick(i, float(score[i])))
        taken[i] = True
        dist = np.minimum(dist, 1.0 - pool @ pool[i])
    return picks


def select(
    strategy: str,
    budget: int,
    *,
    uncertainty: npt.NDArray[np.floating] | None = None,
    embeddings: npt.NDArray[np.floating] | None = None,
    labelled_embeddings: npt.NDArray[np.floating] | None = None,
    diversity_weight: float = 0.4,
    seed: int = 0,
) -> list[Pick]:
    """Up to ``budget`` pool positions, best first.

    Args:
        strategy: One of :data:`STRATEGIES`.
        budget: How many wafers to pick.
        uncertainty: Per pool wafer, for the uncertainty strategies and ``hybrid``.
        embeddings: Per pool wafer, for ``coreset`` and ``hybrid``.
        labelled_embeddings: The annotated wafers' embeddings (what is already covered).
        diversity_weight: ``hybrid``'s share of diversity (0.4: 60% uncertainty, 40% diversity).
        seed: ``random``'s seed.

    Raises:
        InvalidInputError: Unknown strategy, a budget below 1, or a missing input.
    """
    check_strategy(strategy)
    if budget < 1:
        raise InvalidInputError(f"budget must be at least 1, found {budget}")
    if not 0.0 <= diversity_weight <= 1.0:
        raise InvalidInputError(f"diversity weight must be within 0-1, found {diversity_weight}")
    if strategy == "random":
        if uncertainty is not None:
            n = len(uncertainty)
        elif embeddings is not None:
            n = len(embeddings)
        else:
            raise InvalidInputError("random needs the pool (uncertainty or embeddings)")
        order = np.random.default_rng(seed).permutation(n)[:budget]
        return [Pick(int(i), 0.0) for i in order]
    if strategy in ("coreset", "hybrid"):
        if embeddings is None:
            raise InvalidInputError(f"{strategy} needs the pool's embeddings")
        lab = (
            np.asarray(labelled_embeddings)
            if labelled_embeddings is not None
            else np.zeros((0, embeddings.shape[1]))
        )
        if strategy == "coreset":
            return greedy(None, embeddings, lab, budget, 1.0)
        if uncertainty is None:
            raise InvalidInputError("hybrid needs the pool's uncertainty")
        return greedy(uncertainty, embeddings, lab, budget, diversity_weight)
    if uncertainty is None:
        raise InvalidInputError(f"{strategy} needs the pool's uncertainty scores")
    u = np.asarray(uncertainty, np.float64)
    order = np.argsort(-u, kind="stable")[:budget]
    return [Pick(int(i), float(u[i])) for i in order]


def uncertainty_key(strategy: str) -> str:
    """The uncertainty a strategy ranks by (``hybrid`` mixes in entropy; the others need none)."""
    return "entropy" if strategy in ("hybrid", "coreset", "random") else strategy


def uncertainty_of(strategy: str, predictions: Sequence[Prediction]) -> npt.NDArray[np.float64]:
    """Per-wafer uncertainty of ONNX predictions (``hybrid``, ``coreset``, ``random``: entropy)."""
    key = uncertainty_key(strategy)
    if key == "entropy":
        return np.array([p.uncertainty for p in predictions])
    if key == "margin":
        return np.array([1.0 - p.margin for p in predictions])
    if key == "variation":
        return np.array([1.0 - p.confidence for p in predictions])
    raise InvalidInputError(f"{strategy} is not computed from ONNX predictions (it needs torch)")
