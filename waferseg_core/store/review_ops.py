"""Review through the store: each annotator's mask of a wafer, lot agreement, the final mask.

An annotator's mask is the union of that author's live manual and accepted-model annotations;
consensus annotations (a reviewer's adjudication) are kept apart. The *final* mask of a wafer,
what exports and training take, is the consensus when there is one, else the majority vote of
the annotators (one annotator: theirs), else None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from waferseg_core.coco import Annotation, mask_from_annotations
from waferseg_core.errors import InvalidInputError
from waferseg_core.geometry import from_geojson
from waferseg_core.review import Mask, agreement_report, majority_vote
from waferseg_core.store.service import Store, UserRef
from waferseg_core.wafer import WaferMap


@dataclass
class WaferMasks:
    """A stored wafer with its annotators' masks and its consensus (if adjudicated)."""

    wafer: WaferMap
    by_annotator: dict[str, Mask] = field(default_factory=dict)
    consensus: Mask | None = None
    sources: dict[str, set[str]] = field(default_factory=dict)  # annotator -> sources used

    def final(self) -> Mask | None:
        """Consensus, else the majority vote of the annotators, else None."""
        if self.consensus is not None:
            return self.consensus
        if not self.by_annotator:
            return None
        return majority_vote(list(self.by_annotator.values()), self.wafer.grid)


def wafer_masks(store: Store, actor: UserRef, wafer_id: int) -> WaferMasks:
    """Group a wafer's live annotations by annotator and rasterise them."""
    wafer = store.wafer(actor, wafer_id)
    groups: dict[str, list[Annotation]] = {}
    consensus: list[Annotation] = []
    sources: dict[str, set[str]] = {}
    for a in store.annotations(actor, wafer_id):
        ann = Annotation(a["class_id"], from_geojson(a["geometry"]), a["author"], a["source"])
        if a["source"] == "consensus":
            consensus.append(ann)
        else:
            groups.setdefault(a["author"], []).append(ann)
            sources.setdefault(a["author"], set()).add(a["source"])
    out = WaferMasks(wafer, sources=sources)
    out.by_annotator = {n: mask_from_annotations(anns, wafer) for n, anns in groups.items()}
    if consensus:
        out.consensus = mask_from_annotations(consensus, wafer)
    return out


def _kappa_key(row: dict[str, Any]) -> tuple[float, str]:
    k = row["kappa"]
    return (k if k == k else 2.0, row["wafer"])  # NaN (no dies) last


def lot_agreement(
    store: Store, actor: UserRef, lot: str, *, save: bool = False
) -> list[dict[str, Any]]:
    """Agreement of every wafer of a lot with two or more annotators, lowest kappa first.

    With ``save`` the pairwise figures are also kept in the store (needs the review right).

    Raises:
        InvalidInputError: The lot holds no wafers.
    """
    rows = store.list_wafers(actor, lot=lot)
    if not rows:
        raise InvalidInputError(f"lot {lot!r} holds no wafers (or does not exist)")
    out = []
    for r in rows:
        wm = wafer_masks(store, actor, r["id"])
        if len(wm.by_annotator) < 2:
            continue
        report = agreement_report(wm.by_annotator, wm.wafer.grid)
        if save:
            store.save_agreement(actor, r["id"], report)
        out.append(
            {
                "lot": lot,
                "wafer": r["wafer"],
                "wafer_id": r["id"],
                "adjudicated": wm.consensus is not None,
                **report,
            }
        )
    out.sort(key=_kappa_key)
    return out
