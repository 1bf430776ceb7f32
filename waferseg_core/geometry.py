"""Polygons with holes <-> die masks, validation, display simplification and COCO RLE.

Coordinates are die coordinates (x = column, y = row); die (r, c) covers the unit square
[c, c+1] x [r, r+1] and belongs to a region when its centre (c+0.5, r+0.5) lies inside.
A die set converts to the exact union of its squares, so masks and polygons round-trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pycocotools import mask as coco_mask
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from waferseg_core.errors import GeometryError

Mask = npt.NDArray[np.bool_]
Region = Polygon | MultiPolygon
Ring = Sequence[tuple[float, float]]


def mask_from_geometry(geom: BaseGeometry, shape_rc: tuple[int, int]) -> Mask:
    """Dies whose centre lies inside ``geom`` (centre rule), as a boolean (rows, cols) mask."""
    rows, cols = shape_rc
    out = np.zeros((rows, cols), dtype=bool)
    if geom.is_empty:
        return out
    minx, miny, maxx, maxy = geom.bounds
    c0, c1 = max(0, int(np.floor(minx - 0.5))), min(cols, int(np.ceil(maxx + 0.5)))
    r0, r1 = max(0, int(np.floor(miny - 0.5))), min(rows, int(np.ceil(maxy + 0.5)))
    if c0 >= c1 or r0 >= r1:
        return out
    xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    shapely.prepare(geom)
    # intersects_xy counts a centre on the outline as inside: an outline drawn through
    # die centres (e.g. snapped to them) then keeps the dies it passes through.
    out[r0:r1, c0:c1] = shapely.intersects_xy(geom, xs, ys)
    return out


def polygon_from_rings(
    exterior: Ring, holes: Sequence[Ring] = (), *, repair: bool = False
) -> Region:
    """Build a valid polygon from an outline and holes, in die coordinates.

    Args:
        exterior: Outline vertices (x, y); closing vertex optional.
        holes: Hole outlines.
        repair: Repair a self-intersecting outline with ``make_valid`` instead of rejecting it.

    Raises:
        GeometryError: Too few vertices, or an invalid outline (when not repairing); the
            message says where the problem is.
    """
    if len(exterior) < 3:
        raise GeometryError(f"a polygon needs at least 3 vertices, found {len(exterior)}")
    for i, hole in enumerate(holes):
        if len(hole) < 3:
            raise GeometryError(f"hole {i} needs at least 3 vertices, found {len(hole)}")
    poly = Polygon(exterior, holes)
    return validate_region(poly, repair=repair)


def validate_region(geom: BaseGeometry, *, repair: bool = False) -> Region:
    """Return ``geom`` as a valid polygonal region, repaired or rejected.

    Raises:
        GeometryError: When the geometry is not polygonal, empty, or invalid and not repaired.
    """
    if not isinstance(geom, Polygon | MultiPolygon):
        raise GeometryError(f"expected a Polygon or MultiPolygon, found {geom.geom_type}")
    if geom.is_valid and not geom.is_empty:
        return geom
    if geom.is_empty:
        raise GeometryError("expected a polygon with area, found an empty geometry")
    reason = _describe_invalid(geom)
    if not repair:
        raise GeometryError(f"invalid polygon: {reason}")
    fixed = _polygonal_part(shapely.make_valid(geom))
    if fixed.is_empty:
        raise GeometryError(f"invalid polygon could not be repaired: {reason}")
    return fixed


def _describe_invalid(geom: BaseGeometry) -> str:
    """Shapely's reason, with its location written for people ('... at x=2, y=3.5')."""
    text = explain_validity(geom)
    match = re.match(r"([^\[]+)\[([-\d.eE+]+) ([-\d.eE+]+)\]", text)
    if not match:
        return text
    what, x, y = match.groups()
    return f"{what.strip().lower()} at x={float(x):g}, y={float(y):g} (die coordinates)"


def _polygonal_part(geom: BaseGeometry) -> Region:
    """The polygons of a geometry collection, merged (lines and points dropped)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    merged = shapely.union_all(parts) if parts else Polygon()
    return merged if isinstance(merged, Polygon | MultiPolygon) else Polygon()


def geometry_from_mask(mask: npt.NDArray[Any]) -> Region:
    """The exact union of the squares of the dies set in ``mask`` (holes kept).

    Horizontal runs that repeat on consecutive rows merge into one rectangle first, so the
    union handles far fewer boxes than dies.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise GeometryError(f"expected a 2-D mask, found {m.ndim} dimensions")
    boxes = []
    open_runs: dict[tuple[int, int], int] = {}  # (c0, c1) -> first row
    for r in range(m.shape[0] + 1):
        runs = set(_row_runs(m[r])) if r < m.shape[0] else set()
        for run in list(open_runs):
            if run not in runs:
                boxes.append(box(run[0], open_runs.pop(run), run[1], r))
        for run in runs:
            open_runs.setdefault(run, r)
    if not boxes:
        return Polygon()
    merged = shapely.union_all(boxes)
    # union_all leaves collinear vertices where boxes met; simplify(0) removes exactly those.
    merged = merged.simplify(0)
    return _polygonal_part(merged)


def _row_runs(row: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) of the True runs of one row."""
    padded = np.concatenate(([False], row, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def simplify_for_display(geom: Region, tolerance: float = 0.25) -> Region:
    """A lighter outline for drawing at low zoom; never used to compute masks."""
    out = geom.simplify(tolerance, preserve_topology=True)
    return _polygonal_part(out) if not out.is_empty else geom


def has_holes(geom: Region) -> bool:
    """True when any polygon of the region has an interior ring."""
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    return any(len(p.interiors) > 0 for p in polys)


def to_geojson(geom: Region) -> dict[str, Any]:
    """The region as a GeoJSON-like dict (what the store and COCO attributes keep)."""
    return dict(mapping(geom))


def from_geojson(data: dict[str, Any]) -> Region:
    """Inverse of :func:`to_geojson`, validated.

    Raises:
        GeometryError: When the dict is not a valid polygonal GeoJSON geometry.
    """
    try:
        geom = shape(data)
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise GeometryError(f"expected a GeoJSON Polygon/MultiPolygon, found {data!r:.80}") from exc
    return validate_region(geom)


def mask_to_rle(mask: npt.NDArray[Any]) -> dict[str, Any]:
    """COCO compressed RLE of a mask (``counts`` as str, JSON-ready)."""
    m = np.asfortranarray(np.asarray(mask).astype(np.uint8))
    rle = coco_mask.encode(m)
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict[str, Any]) -> Mask:
    """Decode COCO RLE (compressed str/bytes counts or uncompressed list counts).

    Raises:
        GeometryError: When the RLE is malformed.
    """
    try:
        size = [int(s) for s in rle["size"]]
        counts = rle["counts"]
        if isinstance(counts, list):
            if sum(int(c) for c in counts) != size[0] * size[1]:
                raise GeometryError(
                    f"RLE counts sum to {sum(counts)}, expected {size[0] * size[1]} for size {size}"
                )
            compressed = coco_mask.frPyObjects({"size": size, "counts": counts}, *size)
        else:
            raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
            compressed = {"size": size, "counts": raw}
        return np.asarray(coco_mask.decode(compressed), dtype=bool)
    except GeometryError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise GeometryError(f"malformed COCO RLE: {exc}") from exc


def coco_polygons(geom: Region) -> list[list[float]]:
    """COCO ``segmentation`` polygon lists (exteriors only; caller checks :func:`has_holes`)."""
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    out = []
    for p in polys:
        coords = list(p.exterior.coords)[:-1]
        out.append([float(v) for xy in coords for v in xy])
    return out


def geometry_from_coco_polygons(polys: Sequence[Sequence[float]]) -> Region:
    """Union of COCO polygon lists (flat x, y, x, y ...), validated.

    Raises:
        GeometryError: When a list has an odd length or fewer than 3 vertices.
    """
    parts = []
    for i, flat in enumerate(polys):
        if len(flat) % 2 or len(flat) < 6:
            raise GeometryError(
                f"COCO polygon {i} needs an even number (>= 6) of coordinates, found {len(flat)}"
            )
        pts = list(zip(flat[::2], flat[1::2], strict=True))
        parts.append(validate_region(Polygon(pts), repair=True))
    merged = shapely.union_all(parts) if parts else Polygon()
    return _polygonal_part(merged)
