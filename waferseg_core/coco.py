"""COCO import and export of wafer annotations.

One COCO image per wafer (width = cols, height = rows, a die-grid PNG beside the JSON), one
annotation per class region, segmentation in die coordinates. Regions without holes go out as
polygons, regions with holes as compressed RLE; both decode with pycocotools to exactly the
dies of the region. Provenance goes in each annotation's ``attributes``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES, PATTERN_CLASSES, PRIORITY
from waferseg_core.errors import GeometryError, WaferFileError
from waferseg_core.formats import read as read_wafer
from waferseg_core.geometry import (
    Region,
    coco_polygons,
    geometry_from_coco_polygons,
    geometry_from_mask,
    has_holes,
    mask_from_geometry,
    mask_to_rle,
    rle_to_mask,
)
from waferseg_core.wafer import WaferMap

SOURCES = ("manual", "model", "consensus")


@dataclass
class Annotation:
    """One class region on one wafer, with its provenance.

    Attributes:
        class_id: 1-8.
        geometry: The region in die coordinates.
        annotator: Who drew it (or who accepted a model's suggestion).
        source: ``manual``, ``model`` or ``consensus``.
        model_version: The model that proposed it, when ``source`` is ``model``.
        reviewer: Who adjudicated it, for consensus annotations.
    """

    class_id: int
    geometry: Region
    annotator: str = ""
    source: str = "manual"
    model_version: str = ""
    reviewer: str = ""


@dataclass
class CocoWafer:
    """A wafer of a COCO dataset with its annotations."""

    wafer: WaferMap
    file_name: str
    annotations: list[Annotation] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


def mask_from_annotations(
    annotations: Iterable[Annotation], wafer: WaferMap
) -> npt.NDArray[np.uint8]:
    """Class-id mask of a wafer: dies inside each region, higher priority on top, off-wafer 0."""
    mask = np.zeros(wafer.shape, np.uint8)
    ordered = sorted(annotations, key=lambda a: -PRIORITY.index(a.class_id))
    for ann in ordered:
        mask[mask_from_geometry(ann.geometry, wafer.shape)] = ann.class_id
    mask[wafer.grid == 0] = 0
    return mask


def annotations_from_mask(
    mask: npt.NDArray[np.integer],
    *,
    annotator: str = "",
    source: str = "manual",
    model_version: str = "",
) -> list[Annotation]:
    """One annotation per class present in the mask, each the exact union of its dies."""
    out = []
    for cls in PATTERN_CLASSES:
        sel = mask == cls.id
        if sel.any():
            out.append(
                Annotation(cls.id, geometry_from_mask(sel), annotator, source, model_version)
            )
    return out


def _segmentation(geom: Region, shape: tuple[int, int]) -> dict[str, Any] | list[list[float]]:
    if has_holes(geom):
        return mask_to_rle(mask_from_geometry(geom, shape))
    return coco_polygons(geom)


def to_coco(
    wafers: Sequence[CocoWafer], *, description: str = "WaferSeg Studio export"
) -> dict[str, Any]:
    """The COCO dataset dict for some wafers (ids are 1-based positions)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for img_id, cw in enumerate(wafers, start=1):
        w = cw.wafer
        images.append(
            {
                "id": img_id,
                "file_name": cw.file_name,
                "width": w.cols,
                "height": w.rows,
                "lot": w.lot,
                "wafer": w.wafer_id,
                "rows": w.rows,
                "cols": w.cols,
                "source_format": w.source_format,
                **cw.attributes,
            }
        )
        for a in cw.annotations:
            dies = mask_from_geometry(a.geometry, w.shape)
            if not dies.any():
                continue
            rs, cs = np.nonzero(dies)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": a.class_id,
                    "segmentation": _segmentation(a.geometry, w.shape),
                    "area": float(dies.sum()),
                    "bbox": [
                        float(cs.min()),
                        float(rs.min()),
                        float(cs.max() - cs.min() + 1),
                        float(rs.max() - rs.min() + 1),
                    ],
                    "iscrowd": 0,
                    "attributes": {
                        "annotator": a.annotator,
                        "source": a.source,
                        "model_version": a.model_version,
                        "reviewer": a.reviewer,
                    },
                }
            )
    return {
        "info": {"description": description, "version": "1.0", "coordinates": "die"},
        "licenses": [],
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": "defect"} for c in PATTERN_CLASSES
        ],
        "images": images,
        "annotations": anns,
    }


def dump(dataset: dict[str, Any], path: Path) -> None:
    """Write a COCO dict as stable JSON (sorted keys), via a temporary file and rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dataset, sort_keys=True, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def load(path: str | Path) -> list[CocoWafer]:
    """Read a COCO file and the die-grid images it names (relative to the JSON's folder).

    Raises:
        WaferFileError: Malformed JSON, a missing key or image, an unknown category, or a
            segmentation that is not a valid region; the message names the image/annotation.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WaferFileError(str(p), f"cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise WaferFileError(
            str(p), f"expected COCO JSON, found invalid JSON: {exc.msg}", line=exc.lineno
        ) from None
    except UnicodeDecodeError:
        raise WaferFileError(str(p), "expected UTF-8 COCO JSON, found binary data") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise WaferFileError(str(p), "expected a COCO object with an 'images' list")
    names = _category_names(_entries(data, "categories", p), p)
    wafers: dict[int, CocoWafer] = {}
    for img in _entries(data, "images", p):
        try:
            img_id, file_name = int(img["id"]), str(img["file_name"])
        except (KeyError, TypeError, ValueError):
            raise WaferFileError(
                str(p), f"expected image entries with id and file_name, found {img!r:.80}"
            ) from None
        maps = read_wafer(p.parent / file_name)
        wafer = maps[0]
        expect = (img.get("height", wafer.rows), img.get("width", wafer.cols))  # as declared
        if expect != wafer.shape:
            raise WaferFileError(
                str(p),
                f"image {img_id} ({file_name}) declares {expect[0]}x{expect[1]}, "
                f"its die grid is {wafer.rows}x{wafer.cols}",
            )
        wafer.lot = str(img.get("lot", wafer.lot))
        wafer.wafer_id = str(img.get("wafer", wafer.wafer_id))
        known = {
            "id",
            "file_name",
            "width",
            "height",
            "lot",
            "wafer",
            "rows",
            "cols",
            "source_format",
        }
        attrs = {k: v for k, v in img.items() if k not in known}
        wafers[img_id] = CocoWafer(wafer, file_name, [], attrs)
    for ann in _entries(data, "annotations", p):
        wafers_for = wafers.get(ann.get("image_id"))  # type: ignore[arg-type]
        if wafers_for is None:
            raise WaferFileError(
                str(p), f"annotation {ann.get('id')} refers to no image of this file"
            )
        wafers_for.annotations.append(_annotation(ann, names, wafers_for.wafer.shape, p))
    return list(wafers.values())


def _entries(data: dict[str, Any], key: str, p: Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of objects (missing = empty), or a clear error."""
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WaferFileError(
            str(p), f"expected '{key}' to be a list of objects, found {items!r:.60}"
        )
    return items


def _category_names(cats: list[dict[str, Any]], p: Path) -> dict[int, int]:
    """COCO category id -> our class id, matched by name."""
    by_name = {c.name.lower(): c.id for c in CLASSES[1:]}
    out = {}
    for cat in cats:
        try:
            name = str(cat["name"]).lower()
            out[int(cat["id"])] = by_name[name]
        except (KeyError, TypeError, ValueError):
            valid = ", ".join(c.name for c in PATTERN_CLASSES)
            raise WaferFileError(
                str(p), f"expected categories named {valid}, found {cat!r:.80}"
            ) from None
    return out


def _annotation(
    ann: dict[str, Any], names: dict[int, int], shape: tuple[int, int], p: Path
) -> Annotation:
    ann_id = ann.get("id")
    try:
        class_id = names[int(ann["category_id"])]
        seg = ann["segmentation"]
        if isinstance(seg, dict):
            dies = rle_to_mask(seg)
            if dies.shape != shape:
                raise GeometryError(
                    f"RLE size {list(dies.shape)} differs from the image {list(shape)}"
                )
            geom = geometry_from_mask(dies)
        else:
            geom = geometry_from_coco_polygons(seg)
    except GeometryError as exc:  # before ValueError, which it subclasses
        raise WaferFileError(str(p), f"annotation {ann_id}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise WaferFileError(
            str(p), f"annotation {ann_id}: expected category_id and segmentation ({exc})"
        ) from None
    attrs = ann.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise WaferFileError(str(p), f"annotation {ann_id}: expected 'attributes' to be an object")
    source = str(attrs.get("source", "manual"))
    if source not in SOURCES:
        raise WaferFileError(
            str(p),
            f"annotation {ann_id}: source must be one of {', '.join(SOURCES)}, found {source!r}",
        )
    return Annotation(
        class_id,
        geom,
        str(attrs.get("annotator", "")),
        source,
        str(attrs.get("model_version", "")),
        str(attrs.get("reviewer", "")),
    )
