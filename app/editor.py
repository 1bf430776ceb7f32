"""The editor: tools over pointer events, a QUndoStack of core edits, saving each gesture.

Every gesture becomes one core :class:`~waferseg_core.editing.Edit` wrapped in a
``QUndoCommand``; applying or reverting it changes the document, and the document's change
notification saves the touched region to the store at once (create, update from the version it
was loaded at, or soft delete). A save that the store refuses because someone else saved first is
reported through ``conflict`` and never overwrites their work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from waferseg_core import editing
from waferseg_core.errors import ConflictError, WaferSegError
from waferseg_core.geometry import from_geojson, to_geojson
from waferseg_core.store.service import Store, UserRef
from waferseg_core.wafer import WaferMap

TOOLS = ("select", "polygon", "hole", "brush", "eraser", "ring", "sector")


class EditCommand(QUndoCommand):
    """One gesture on the undo stack."""

    def __init__(self, doc: editing.Document, edits: Sequence[editing.Edit], text: str) -> None:
        super().__init__(text)
        self.doc, self.edits = doc, list(edits)

    def redo(self) -> None:
        """Apply the gesture's edits."""
        for e in self.edits:
            e.apply(self.doc)

    def undo(self) -> None:
        """Revert them, last first."""
        for e in reversed(self.edits):
            e.revert(self.doc)


class Editor(QObject):
    """The editing state of the wafer on screen."""

    mask_changed = Signal()
    conflict = Signal(str)
    saved = Signal(int)  # region key
    draft_changed = Signal()  # the in-progress outline (polygon/hole/ring/sector clicks)

    def __init__(self, store: Store, user: UserRef) -> None:
        super().__init__()
        self.store, self.user = store, user
        self.stack = QUndoStack(self)
        self.doc: editing.Document | None = None
        self.wafer_id = -1
        self.tool = "select"
        self.class_id = 5
        self.brush_radius = 1.0
        self.selected: int | None = None
        self.draft: list[tuple[float, float]] = []
        self._known: dict[int, editing.EditorRegion] = {}
        self._stroke: npt.NDArray[np.bool_] | None = None
        # A select-tool drag: ("vertex", VertexRef) or ("move", None), its start and current point.
        self._drag: tuple[str, editing.VertexRef | None] | None = None
        self._drag_from = (0.0, 0.0)
        self._drag_to = (0.0, 0.0)
        self._last_press = (0.0, 0.0)

    # ---- loading and saving ---------------------------------------------------------------------

    def load(self, wafer_id: int, wafer: WaferMap) -> None:
        """Edit this wafer's annotations (the undo history starts afresh)."""
        self.stack.clear()
        self.wafer_id = wafer_id
        self.doc = editing.Document(wafer)
        self.selected = None
        self.draft = []
        self._known = {}
        for a in self.store.annotations(self.user, wafer_id):
            e = editing.AddRegion(a["class_id"], from_geojson(a["geometry"]))
            e.apply(self.doc)
            r = self.doc.regions[e.key]
            r.store_id, r.version = a["id"], a["version"]
            self._known[e.key] = r
        self.doc.listeners.append(self._on_change)
        self.mask_changed.emit()

    def mask(self) -> npt.NDArray[np.uint8]:
        """The class mask of the regions being edited."""
        assert self.doc is not None
        return self.doc.mask()

    def _on_change(self, key: int) -> None:
        assert self.doc is not None
        region = self.doc.regions.get(key)
        try:
            if region is None:
                old = self._known.pop(key, None)
                if old is not None and old.store_id is not None:
                    self.store.delete_annotation(self.user, old.store_id, old.version)
                    old.store_id, old.version = None, 0  # restored later: saved as a new annotation
            elif region.store_id is None:
                region.store_id, region.version = self.store.save_annotation(
                    self.user, self.wafer_id, region.class_id, to_geojson(region.geometry)
                )
                self._known[key] = region
            else:
                _, region.version = self.store.save_annotation(
                    self.user,
                    self.wafer_id,
                    region.class_id,
                    to_geojson(region.geometry),
                    annotation_id=region.store_id,
                    base_version=region.version,
                )
                self._known[key] = region
            self.saved.emit(key)
        except ConflictError as exc:
            self.conflict.emit(str(exc))
        except WaferSegError as exc:
            self.conflict.emit(f"not saved: {exc}")
        self.mask_changed.emit()

    def push(self, edits: Sequence[editing.Edit | None], text: str) -> None:
        """Put one gesture (its edits) on the undo stack, applying it."""
        real = [e for e in edits if e is not None]
        if real and self.doc is not None:
            self.stack.push(EditCommand(self.doc, real, text))

    # ---- tools ----------------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """Switch tools (an unfinished outline is dropped)."""
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)}, found {tool!r}")
        self.tool = tool
        self.cancel()

    def set_class(self, class_id: int) -> None:
        """Keys 1-8: the class for new regions, and the selected region's class."""
        self.class_id = class_id
        if self.selected is not None and self.doc is not None and self.selected in self.doc.regions:
            self.push([editing.set_class(self.doc, self.selected, class_id)], "set class")

    @property
    def dragging(self) -> bool:
        """True while a select-tool drag (vertex or region) is in progress."""
        return self._drag is not None

    def press(self, x: float, y: float) -> bool:
        """A click or the start of a drag, in die coordinates.

        Returns True when the editor took it (so the view does not pan).
        """
        if self.doc is None:
            return False
        self._last_press = (x, y)
        if self.tool == "select":
            sel = self.selected if self.selected in self.doc.regions else None
            ref = editing.nearest_vertex(self.doc, sel, x, y) if sel is not None else None
            if ref is not None:
                self._drag = ("vertex", ref)
            else:
                hit = self.doc.region_at(x, y)
                self.selected = hit.key if hit else None
                self._drag = ("move", None) if hit else None
            self._drag_from = self._drag_to = (x, y)
            return self._drag is not None
        elif self.tool in ("brush", "eraser"):
            self._stroke = editing.brush_dies(self.doc, (x, y), self.brush_radius)
        else:
            self.draft.append((x, y))
            self.draft_changed.emit()
            self._maybe_finish_primitive()
        return True

    def move(self, x: float, y: float) -> None:
        """Pointer movement with the button held."""
        if self.doc is not None and self._stroke is not None:
            self._stroke |= editing.brush_dies(self.doc, (x, y), self.brush_radius)
        if self._drag is not None:
            self._drag_to = (x, y)
            self.draft = [self._drag_from, self._drag_to]
            self.draft_changed.emit()

    def release(self) -> None:
        """End of a drag: a brush stroke, a vertex drag or a region move becomes one edit."""
        if self._drag is not None:
            self._end_drag()
            return
        if self.doc is None or self._stroke is None:
            return
        dies, self._stroke = self._stroke, None
        if self.tool == "brush":
            key = self.selected if self.selected in self.doc.regions else None
            if key is not None and self.doc.regions[key].class_id != self.class_id:
                key = None
            edit = editing.paint(self.doc, self.class_id, dies, key)
            if isinstance(edit, editing.AddRegion):
                self.selected = edit.key
            self.push([edit], "brush")
        elif self.selected is not None and self.selected in self.doc.regions:
            self.push([editing.erase(self.doc, self.selected, dies)], "erase")
        else:  # no selection: erase from every region the stroke touches
            self.push([editing.erase(self.doc, k, dies) for k in list(self.doc.regions)], "erase")

    def _end_drag(self) -> None:
        assert self._drag is not None and self.doc is not None
        kind, ref = self._drag
        self._drag = None
        self.draft = []
        self.draft_changed.emit()
        (x0, y0), (x1, y1) = self._drag_from, self._drag_to
        key = self.selected
        if key is None or key not in self.doc.regions:
            return
        try:
            if kind == "vertex" and ref is not None and math.hypot(x1 - x0, y1 - y0) > 0.05:
                self.push([editing.move_vertex(self.doc, key, ref, (x1, y1))], "move vertex")
            elif kind == "move":
                # Whole dies: a region drawn on the die grid stays exactly on it.
                dx, dy = round(x1 - x0), round(y1 - y0)
                if dx or dy:
                    self.push([editing.move_region(self.doc, key, dx, dy)], "move region")
        except WaferSegError as exc:
            self.conflict.emit(f"not changed: {exc}")

    def insert_vertex(self, x: float, y: float) -> None:
        """Double-click with the select tool: a new vertex on the selected region's edge."""
        if self.doc is not None and self.selected in self.doc.regions:
            self.push([editing.insert_vertex(self.doc, self.selected, x, y)], "insert vertex")

    def finish(self) -> None:
        """Enter or double-click: close the polygon (or hole) being drawn."""
        if self.doc is None or len(self.draft) < 3:
            return
        pts, self.draft = self.draft, []
        if self.tool == "polygon":
            edit = editing.add_polygon(self.doc, self.class_id, pts)
            self.selected = edit.key
            self.push([edit], "polygon")
        elif self.tool == "hole" and self.selected in self.doc.regions:
            try:
                self.push([editing.cut_hole(self.doc, self.selected, pts)], "hole")
            except WaferSegError as exc:
                self.conflict.emit(f"hole not cut: {exc}")
        self.draft_changed.emit()

    def back(self) -> None:
        """Backspace: drop the last vertex drawn.

        With the select tool: delete the selected region's vertex under the last click.
        """
        if self.tool == "select" and self.doc is not None and self.selected in self.doc.regions:
            ref = editing.nearest_vertex(self.doc, self.selected, *self._last_press)
            if ref is not None:
                try:
                    self.push(
                        [editing.delete_vertex(self.doc, self.selected, ref)], "delete vertex"
                    )
                except WaferSegError as exc:
                    self.conflict.emit(f"not changed: {exc}")
            return
        if self.draft:
            self.draft.pop()
            self.draft_changed.emit()

    def cancel(self) -> None:
        """Esc: drop the outline being drawn."""
        self.draft = []
        self._stroke = None
        self.draft_changed.emit()

    def delete_selected(self) -> None:
        """Del: delete the selected region."""
        if self.doc is not None and self.selected in self.doc.regions:
            self.push([editing.DeleteRegion(self.selected)], "delete")
            self.selected = None

    def accept_prediction(self, mask: npt.NDArray[np.integer]) -> None:
        """Replace the regions by editable polygons of a predicted mask (one undo step)."""
        if self.doc is None:
            return
        edits: list[editing.Edit | None] = [editing.DeleteRegion(k) for k in list(self.doc.regions)]
        edits += editing.regions_from_mask(mask)
        self.push(edits, "accept prediction")

    def _maybe_finish_primitive(self) -> None:
        assert self.doc is not None
        cx, cy = self.draft[0] if self.draft else (0.0, 0.0)

        def dist(p: tuple[float, float]) -> float:
            return float(np.hypot(p[0] - cx, p[1] - cy))

        if self.tool == "ring" and len(self.draft) == 3:
            r1, r2 = sorted((dist(self.draft[1]), dist(self.draft[2])))
            pts, self.draft = self.draft, []
            self.push([editing.ring(self.doc, self.class_id, pts[0], r1, r2)], "ring")
            self.draft_changed.emit()
        elif self.tool == "sector" and len(self.draft) == 5:
            r1, r2 = sorted((dist(self.draft[1]), dist(self.draft[2])))
            a0 = float(np.degrees(np.arctan2(cy - self.draft[3][1], self.draft[3][0] - cx)))
            a1 = float(np.degrees(np.arctan2(cy - self.draft[4][1], self.draft[4][0] - cx)))
            pts, self.draft = self.draft, []
            self.push([editing.sector(self.doc, self.class_id, pts[0], r1, r2, a0, a1)], "sector")
            self.draft_changed.emit()
