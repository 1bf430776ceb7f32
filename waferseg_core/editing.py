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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Point, Polygon

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
