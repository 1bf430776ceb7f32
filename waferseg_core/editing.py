"""The editor's document model: annotation regions and reversible edits.

A :class:`Document` holds one wafer's regions (class + geometry, with the store id and version
each started from). Every change is an :class:`Edit` that carries only its diff and knows
``apply`` and ``revert``; the app wraps each in a ``QUndoCommand`` (one gesture, one edit), so
undo/redo costs the size of the changes, not of the document. Tools build edits from die
coordinates: polygons (with holes), a die brush and eraser, ring and sector primitives.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from waferseg_core.classes import PRIORITY
from waferseg_core.errors import GeometryError, InvalidInputError
from waferseg_core.geometry import (
    Region,
    geometry_from_mask,
    mask_from_geometry,
    polygon_from_rings,
    validate_region,
)
from waferseg_core.wafer import WaferMap

_ids = itertools.count(1)


@dataclass
class EditorRegion:
    """One annotation region in the editor.

    Attributes:
        key: The editor's own id (stable across undo/redo).
        class_id: 1-8.
        geometry: Die-coordinate region.
        store_id: The annotation's id in the store (None until first saved).
        version: The store version this state is based on.
    """

    key: int
    class_id: int
    geometry: Region
    store_id: int | None = None
    version: int = 0


@dataclass
class Document:
    """The regions of one wafer, and who to tell when they change."""

    wafer: WaferMap
    regions: dict[int, EditorRegion] = field(default_factory=dict)
    listeners: list[Callable[[int], None]] = field(default_factory=list)

    def changed(self, key: int) -> None:
        """Tell the listeners (the view, the saver) that a region changed."""
        for fn in self.listeners:
            fn(key)

    def mask(self) -> npt.NDArray[np.uint8]:
        """The class mask the regions make (overlaps by the fixed priority, off-wafer 0)."""
        mask = np.zeros(self.wafer.shape, np.uint8)
        for r in sorted(self.regions.values(), key=lambda r: -PRIORITY.index(r.class_id)):
            mask[mask_from_geometry(r.geometry, self.wafer.shape)] = r.class_id
        mask[self.wafer.grid == 0] = 0
        return mask

    def region_at(self, x: float, y: float) -> EditorRegion | None:
        """The topmost region containing the point (die coordinates)."""
        hits = [r for r in self.regions.values() if r.geometry.intersects(Point(x, y))]
        return min(hits, key=lambda r: PRIORITY.index(r.class_id)) if hits else None


class Edit(ABC):
    """A reversible change to a document (``key``: the region it touches; ``text``: for menus)."""

    key: int
    text: str

    @abstractmethod
    def apply(self, doc: Document) -> None:
        """Make the change."""

    @abstractmethod
    def revert(self, doc: Document) -> None:
        """Undo the change."""


@dataclass
class AddRegion(Edit):
    """A new region."""

    class_id: int
    geometry: Region
    key: int = field(default_factory=lambda: next(_ids))
    text: str = "add region"

    def apply(self, doc: Document) -> None:
        """Add it (with its key, so redo finds the same region)."""
        doc.regions[self.key] = EditorRegion(self.key, self.class_id, self.geometry)
        doc.changed(self.key)

    def revert(self, doc: Document) -> None:
        """Remove it."""
        doc.regions.pop(self.key, None)
        doc.changed(self.key)


@dataclass
class ChangeRegion(Edit):
    """A region's geometry and/or class changes."""

    key: int
    before: tuple[int, Region]
    after: tuple[int, Region]
    text: str = "change region"

    def apply(self, doc: Document) -> None:
        """Set the new class and geometry."""
        r = doc.regions[self.key]
        r.class_id, r.geometry = self.after
        doc.changed(self.key)

    def revert(self, doc: Document) -> None:
        """Restore the old class and geometry."""
        r = doc.regions[self.key]
        r.class_id, r.geometry = self.before
        doc.changed(self.key)


@dataclass
class DeleteRegion(Edit):
    """A region goes away (and comes back on undo, with its store identity)."""

    key: int
    saved: EditorRegion | None = None
    text: str = "delete region"

    def apply(self, doc: Document) -> None:
        """Remove it, remembering it."""
        self.saved = doc.regions.pop(self.key)
        doc.changed(self.key)

    def revert(self, doc: Document) -> None:
        """Put it back."""
        assert self.saved is not None
        doc.regions[self.key] = self.saved
        doc.changed(self.key)


def _clip(geom: Region, doc: Document) -> Region:
    """The geometry kept inside the grid's extent."""
    rows, cols = doc.wafer.shape
    out = geom.intersection(shapely.box(0, 0, cols, rows))
    return validate_region(out) if not out.is_empty else Polygon()


def add_polygon(doc: Document, class_id: int, vertices: Sequence[tuple[float, float]]) -> AddRegion:
    """An edit adding a polygon drawn vertex by vertex (self-intersections are repaired)."""
    _check_class(class_id)
    return AddRegion(class_id, _clip(polygon_from_rings(vertices, repair=True), doc))


def cut_hole(doc: Document, key: int, vertices: Sequence[tuple[float, float]]) -> ChangeRegion:
    """An edit cutting a hole (any drawn outline) into a region."""
    r = doc.regions[key]
    hole = polygon_from_rings(vertices, repair=True)
    new = r.geometry.difference(hole)
    if new.is_empty:
        raise GeometryError("the hole would remove the whole region; delete it instead")
    return ChangeRegion(
        key, (r.class_id, r.geometry), (r.class_id, validate_region(new, repair=True))
    )


def brush_dies(doc: Document, centre: tuple[float, float], radius: float) -> npt.NDArray[np.bool_]:
    """The dies whose centres are within ``radius`` dies of ``centre`` (on the wafer)."""
    rows, cols = doc.wafer.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    d = np.hypot(xx + 0.5 - centre[0], yy + 0.5 - centre[1])
    out: npt.NDArray[np.bool_] = (d <= max(radius, 0.5)) & (doc.wafer.grid > 0)
    return out


def paint(
    doc: Document, class_id: int, dies: npt.NDArray[np.bool_], key: int | None = None
) -> Edit | None:
    """An edit adding dies to a region (a new one when ``key`` is None)."""
    _check_class(class_id)
    if not dies.any():
        return None
    add = geometry_from_mask(dies)
    if key is None:
        return AddRegion(class_id, add)
    r = doc.regions[key]
    merged = validate_region(shapely.union(r.geometry, add), repair=True)
    return ChangeRegion(key, (r.class_id, r.geometry), (class_id, merged))


def erase(doc: Document, key: int, dies: npt.NDArray[np.bool_]) -> Edit | None:
    """An edit removing dies from a region (deleting it when nothing is left)."""
    r = doc.regions[key]
    inside = mask_from_geometry(r.geometry, doc.wafer.shape)
    if not (inside & dies).any():
        return None
    if not (inside & ~dies).any():
        return DeleteRegion(key)
    # Cut the erased die squares out: the drawn outline stays where nothing was erased.
    new = r.geometry.difference(geometry_from_mask(dies))
    return ChangeRegion(
        key, (r.class_id, r.geometry), (r.class_id, validate_region(new, repair=True))
    )


def ring(
    doc: Document,
    class_id: int,
    centre: tuple[float, float],
    r_in: float,
    r_out: float,
    segments: int = 96,
) -> AddRegion:
    """An edit adding a ring (annulus) around ``centre``; ``r_in`` = 0 makes a disc."""
    _check_class(class_id)
    if not 0 <= r_in < r_out:
        raise InvalidInputError(
            f"a ring needs 0 <= inner < outer radius, found {r_in:g} and {r_out:g}"
        )
    outer = _circle(centre, r_out, segments)
    holes = [_circle(centre, r_in, segments)] if r_in > 0 else []
    return AddRegion(class_id, _clip(polygon_from_rings(outer, holes), doc))


def sector(
    doc: Document,
    class_id: int,
    centre: tuple[float, float],
    r_in: float,
    r_out: float,
    start_deg: float,
    end_deg: float,
    segments: int = 96,
) -> AddRegion:
    """An edit adding a ring sector from ``start_deg`` to ``end_deg``.

    Angles run counter-clockwise on screen, 0 = to the right of the centre.
    """
    _check_class(class_id)
    if not 0 <= r_in < r_out:
        raise InvalidInputError(
            f"a sector needs 0 <= inner < outer radius, found {r_in:g} and {r_out:g}"
        )
    span = (end_deg - start_deg) % 360 or 360
    n = max(4, int(segments * span / 360))
    angles = [math.radians(start_deg + span * k / n) for k in range(n + 1)]
    cx, cy = centre
    # Screen y grows downward: a counter-clockwise angle on screen subtracts from y.
    outer = [(cx + r_out * math.cos(a), cy - r_out * math.sin(a)) for a in angles]
    inner = (
        [(cx + r_in * math.cos(a), cy - r_in * math.sin(a)) for a in reversed(angles)]
        if r_in
        else [centre]
    )
    return AddRegion(class_id, _clip(polygon_from_rings(outer + inner, repair=True), doc))


def set_class(doc: Document, key: int, class_id: int) -> ChangeRegion:
    """An edit giving a region another class (keys 1-8)."""
    _check_class(class_id)
    r = doc.regions[key]
    return ChangeRegion(key, (r.class_id, r.geometry), (class_id, r.geometry), text="set class")


def regions_from_mask(mask: npt.NDArray[np.integer]) -> list[AddRegion]:
    """Edits adding one region per class present in a (predicted) mask, holes kept."""
    return [
        AddRegion(int(c), geometry_from_mask(mask == c)) for c in np.unique(mask) if 1 <= c <= 8
    ]


def _circle(centre: tuple[float, float], r: float, segments: int) -> list[tuple[float, float]]:
    cx, cy = centre
    return [
        (
            cx + r * math.cos(2 * math.pi * k / segments),
            cy + r * math.sin(2 * math.pi * k / segments),
        )
        for k in range(segments)
    ]


def _check_class(class_id: int) -> None:
    if not 1 <= class_id <= 8:
        raise InvalidInputError(f"class id must be 1-8, found {class_id}")


# ---- vertices and moves ----------------------------------------------------------------------


@dataclass(frozen=True)
class VertexRef:
    """A vertex of a region: polygon part, ring (0 outline, 1.. holes) and index in the ring."""

    part: int
    ring: int
    index: int


def _parts(geom: Region) -> list[Polygon]:
    return list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]


def _rings(p: Polygon) -> list[list[tuple[float, float]]]:
    def pts(coords: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
        return [(float(c[0]), float(c[1])) for c in list(coords)[:-1]]

    return [pts(p.exterior.coords)] + [pts(r.coords) for r in p.interiors]


def nearest_vertex(
    doc: Document, key: int, x: float, y: float, tol: float = 0.35
) -> VertexRef | None:
    """The region's vertex within ``tol`` dies of (x, y), if any."""
    best: tuple[float, VertexRef] | None = None
    for pi, p in enumerate(_parts(doc.regions[key].geometry)):
        for ri, ring_ in enumerate(_rings(p)):
            for vi, (vx, vy) in enumerate(ring_):
                d = math.hypot(vx - x, vy - y)
                if d <= tol and (best is None or d < best[0]):
                    best = (d, VertexRef(pi, ri, vi))
    return best[1] if best else None


def _with_ring(geom: Region, ref: VertexRef, ring_: list[tuple[float, float]]) -> Region:
    parts = _parts(geom)
    rings = _rings(parts[ref.part])
    if len(ring_) < 3:
        raise GeometryError("a ring needs at least 3 vertices; delete the region instead")
    rings[ref.ring] = ring_
    parts[ref.part] = Polygon(rings[0], rings[1:])
    merged = MultiPolygon(parts) if len(parts) > 1 else parts[0]
    return validate_region(merged, repair=True)


def _change(doc: Document, key: int, geom: Region, text: str) -> ChangeRegion:
    r = doc.regions[key]
    return ChangeRegion(key, (r.class_id, r.geometry), (r.class_id, geom), text=text)


def move_vertex(doc: Document, key: int, ref: VertexRef, to: tuple[float, float]) -> ChangeRegion:
    """An edit dragging one vertex to a new place."""
    ring_ = _rings(_parts(doc.regions[key].geometry)[ref.part])[ref.ring]
    ring_[ref.index] = to
    return _change(doc, key, _with_ring(doc.regions[key].geometry, ref, ring_), "move vertex")


def delete_vertex(doc: Document, key: int, ref: VertexRef) -> ChangeRegion:
    """An edit removing one vertex (a ring keeps at least 3)."""
    ring_ = _rings(_parts(doc.regions[key].geometry)[ref.part])[ref.ring]
    del ring_[ref.index]
    return _change(doc, key, _with_ring(doc.regions[key].geometry, ref, ring_), "delete vertex")


def insert_vertex(
    doc: Document, key: int, x: float, y: float, tol: float = 0.35
) -> ChangeRegion | None:
    """An edit inserting a vertex on the region's edge nearest (x, y), if within ``tol`` dies."""
    best: tuple[float, VertexRef, tuple[float, float]] | None = None
    for pi, p in enumerate(_parts(doc.regions[key].geometry)):
        for ri, ring_ in enumerate(_rings(p)):
            for vi in range(len(ring_)):
                (ax, ay), (bx, by) = ring_[vi], ring_[(vi + 1) % len(ring_)]
                dx, dy = bx - ax, by - ay
                t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy or 1.0)))
                px, py = ax + t * dx, ay + t * dy
                d = math.hypot(px - x, py - y)
                if d <= tol and (best is None or d < best[0]):
                    best = (d, VertexRef(pi, ri, vi + 1), (px, py))
    if best is None:
        return None
    _, ref, pt = best
    ring_ = _rings(_parts(doc.regions[key].geometry)[ref.part])[ref.ring]
    ring_.insert(ref.index, pt)
    return _change(doc, key, _with_ring(doc.regions[key].geometry, ref, ring_), "insert vertex")


def move_region(doc: Document, key: int, dx: float, dy: float) -> ChangeRegion:
    """An edit moving a whole region by (dx, dy) dies."""
    from shapely import affinity

    moved = _clip(affinity.translate(doc.regions[key].geometry, dx, dy), doc)
    if moved.is_empty:
        raise GeometryError("the region would leave the wafer grid")
    return _change(doc, key, moved, "move region")
