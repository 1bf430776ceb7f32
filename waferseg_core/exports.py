"""Exports of a stored lot: COCO with provenance, a CSV per wafer, inked maps, PNG masks.

Inked maps carry each die's class as a bin (:func:`waferseg_core.formats.bins.ink`): G85, E142
and STDF hold the whole lot in one file; SINF and TSK, one wafer per file, go to a folder. KLARF
(the lot in one file) carries it as each defect's class.

Each wafer's mask is its *final* mask (:mod:`waferseg_core.store.review_ops`: consensus, else
the annotators' majority, else one annotator's); wafers nobody annotated take the model's
prediction (CSV ``mask_source`` says which). COCO carries annotations only. Streamed: one wafer
at a time with a progress callback; all or nothing: everything is written beside the target
and moved into place at the end, so a failed export leaves no half-written file.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES
from waferseg_core.coco import CocoWafer, annotations_from_mask, dump, to_coco
from waferseg_core.errors import InvalidInputError
from waferseg_core.formats import write as write_maps
from waferseg_core.formats.bins import ink
from waferseg_core.formats.png import png_bytes
from waferseg_core.formats.pngio import encode_gray
from waferseg_core.inference import Predictor
from waferseg_core.patterns import class_die_counts
from waferseg_core.store.predict import CHUNK, StoredPrediction, predict_stored, resolve_model
from waferseg_core.store.review_ops import WaferMasks, wafer_masks
from waferseg_core.store.service import Store, UserRef

KINDS = ("coco", "csv", "g85", "e142", "stdf", "klarf", "sinf", "tsk", "png")
FOLDER_KINDS = ("coco", "png", "sinf", "tsk")
INKED_LOT = ("g85", "e142", "stdf", "klarf")  # one file for the lot
INKED_EACH = ("sinf", "tsk")  # one file per wafer
VERDICT = ("pattern", "patterns", "pattern_probability", "confidence")  # the model's call
CSV_COLUMNS = [
    "lot",
    "wafer",
    "wafer_id",
    "rows",
    "cols",
    "dies",
    "fail_dies",
    "status",
    *VERDICT,
    "model_version",
    "mask_source",
    *(f"dies_{c.name}" for c in CLASSES[1:]),
    "annotators",
    "reviewer",
]

Progress = Callable[[int, int], None]


def _mask_source(wm: WaferMasks, model: bool) -> str:
    if wm.consensus is not None:
        return "consensus"
    if wm.by_annotator:
        return "majority" if len(wm.by_annotator) > 1 else "annotator"
    return "model" if model else "none"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "wafer"


def _file_name(wm: WaferMasks, row: dict[str, Any], suffix: str) -> str:
    """``<lot>_<wafer>_<store id>.<suffix>``: unique in the lot, readable in a file list."""
    return f"{_safe(wm.wafer.lot)}_{_safe(wm.wafer.wafer_id)}_{row['wafer_id']}.{suffix}"


def _staging(out: Path, folder: bool) -> Path:
    """A temporary folder beside ``out`` (same file system, so the final move is a rename)."""
    if folder and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(f"--out must be a new or empty folder, found {out} with content")
    if not folder and out.is_dir():
        raise InvalidInputError(f"--out must be a file path, found a folder: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _finish(stage: Path, out: Path, folder: bool) -> None:
    if folder:
        if out.exists():
            out.rmdir()  # checked empty in _staging
        stage.rename(out)
    else:
        (stage / out.name).replace(out)
        shutil.rmtree(stage)


class _Rows:
    """Per wafer: the final mask (or the model's), provenance and the model's verdict."""

    def __init__(self, store: Store, actor: UserRef, predictor: Any | None) -> None:
        self.store, self.actor, self.predictor = store, actor, predictor

    def rows(
        self, infos: list[dict[str, Any]]
    ) -> Iterator[tuple[WaferMasks, npt.NDArray[np.uint8], dict[str, Any]]]:
        """(masks, mask written, CSV row) per wafer, in order; the model runs a chunk at a time."""
        for k in range(0, len(infos), CHUNK):
            chunk = infos[k : k + CHUNK]
            preds: list[Any] = [None] * len(chunk)
            if self.predictor is not None:
                ids = [i["id"] for i in chunk]
                preds = [
                    p
                    for c in predict_stored(self.store, self.actor, self.predictor, ids)
                    for p in c
                ]
            for info, p in zip(chunk, preds, strict=True):
                yield self._row(info, p)

    def _row(
        self, info: dict[str, Any], p: StoredPrediction | None
    ) -> tuple[WaferMasks, npt.NDArray[np.uint8], dict[str, Any]]:
        wm = wafer_masks(self.store, self.actor, info["id"])
        reviews = self.store.reviews(self.actor, info["id"])
        mask = wm.final()
        verdict: dict[str, Any] = dict.fromkeys(VERDICT, "")
        if p is not None:
            verdict = {
                "pattern": p.pattern,
                "patterns": ";".join(p.patterns),
                "pattern_probability": round(p.pattern_probability, 4),
                "confidence": round(p.confidence, 4),
            }
            if mask is None:
                mask = p.mask
        if mask is None:
            mask = np.zeros(wm.wafer.shape, np.uint8)
        counts = class_die_counts(mask, wm.wafer.grid)
        row = {
            **{k: info[k] for k in ("lot", "wafer", "rows", "cols", "dies", "fail_dies")},
            "wafer_id": info["id"],
            "status": info["status"],
            **verdict,
            "model_version": self.predictor.path.name if self.predictor else "",
            "mask_source": _mask_source(wm, self.predictor is not None),
            **{f"dies_{c.name}": counts[c.id] for c in CLASSES[1:]},
            "annotators": ";".join(sorted(wm.by_annotator)),
            "reviewer": reviews[0]["reviewer"] if reviews else "",
        }
        return wm, mask, row


def export_lot(
    store: Store,
    actor: UserRef,
    lot: str,
    kind: str,
    out: str | Path,
    *,
    model: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Export a lot; returns a summary (kind, lot, wafers, out, files).

    Args:
        store: The store.
        actor: Who exports (read right).
        lot: The lot's name.
        kind: One of :data:`KINDS`.
        out: A file (csv, g85, e142, stdf, klarf) or a new or empty folder (coco, png, sinf, tsk).
        progress: Called with (done, total) after each wafer.
        model: ONNX model for wafers without annotations and for the CSV's verdict columns
            (default: the store's active model, else the shipped one); unused by COCO.

    Raises:
        InvalidInputError: Unknown kind, empty lot, or an unusable ``out``.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"export kind must be one of {', '.join(KINDS)}, found {kind!r}")
    infos = store.list_wafers(actor, lot=lot)
    if not infos:
        raise InvalidInputError(f"lot {lot!r} holds no wafers (or does not exist)")
    predictor = None
    if kind != "coco":
        predictor = Predictor(resolve_model(store, actor, model))
    out = Path(out)
    folder = kind in FOLDER_KINDS
    stage = _staging(out, folder)
    try:
        files = _write(kind, _Rows(store, actor, predictor), infos, stage, out.name, progress)
        _finish(stage, out, folder)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return {"kind": kind, "lot": lot, "wafers": len(infos), "out": str(out), "files": files}


def _write(
    kind: str,
    rows: _Rows,
    infos: list[dict[str, Any]],
    stage: Path,
    name: str,
    progress: Progress | None,
) -> int:
    total = len(infos)

    def each() -> Any:
        for n, item in enumerate(rows.rows(infos), start=1):
            yield item
            if progress:
                progress(n, total)

    if kind == "csv":
        with (stage / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, CSV_COLUMNS)
            writer.writeheader()
            for _, _, row in each():
                writer.writerow(row)
        return 1
    if kind in INKED_LOT:
        write_maps([ink(wm.wafer, mask) for wm, mask, _ in each()], stage / name, kind)
        return 1
    if kind in INKED_EACH:
        for wm, mask, row in each():
            write_maps([ink(wm.wafer, mask)], stage / _file_name(wm, row, kind), kind)
        return total
    if kind == "png":
        for wm, mask, row in each():
            w = wm.wafer
            meta = {
                "waferseg:kind": "class-mask",
                "waferseg:lot": w.lot,
                "waferseg:wafer": w.wafer_id,
            }
            (stage / _file_name(wm, row, "png")).write_bytes(encode_gray(mask, meta))
        return total
    items = []
    for wm, mask, row in each():
        w = wm.wafer
        final = None if row["mask_source"] == "none" else mask  # COCO runs no model
        anns = (
            annotations_from_mask(final, annotator=row["annotators"]) if final is not None else []
        )
        source = _mask_source(wm, False)
        for a in anns:
            a.source = "consensus" if source == "consensus" else "manual"
            a.reviewer = row["reviewer"] if source == "consensus" else ""
        fname = _file_name(wm, row, "png")
        (stage / fname).write_bytes(png_bytes(w))
        items.append(CocoWafer(w, fname, anns, {"mask_source": source, "status": row["status"]}))
    dump(
        to_coco(items, description=f"WaferSeg Studio export of lot {items[0].wafer.lot}"),
        stage / "annotations.json",
    )
    return total + 1
