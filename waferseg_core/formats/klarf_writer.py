"""KLARF 1.2 writer: one lot per file, a wafer block per map, defects classified by pattern.

What a KLARF reader needs to rebuild each die grid is written: the dies on the wafer as the
``SampleTestPlan`` and every failing die as at least one defect. Inspection defects (a map read
from KLARF) are written as they were; a failing die with none (a tester's fail) is written as one
defect at the die's centre with size 0. An **inked** map (:func:`bins.ink`, a lot export) writes
each defect's ``CLASSNUMBER`` as the pattern class of its die (0: no pattern) and a
``ClassLookup`` naming the classes; other maps keep the defects' own classes (and the lookup a
KLARF map was read with). Die indices follow KLARF: ``XINDEX`` grows right, ``YINDEX`` up.
Records a lot's wafers share (device, step, diameter, die pitch, notch) are written once before
the first wafer; one they disagree on, after each wafer's ``WaferID``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import PATTERN_CLASSES
from waferseg_core.errors import InvalidInputError
from waferseg_core.formats.bins import inked_mask
from waferseg_core.wafer import FAIL, CoordFrame, WaferMap

_SPEC = ("DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "DSIZE", "CLASSNUMBER", "TEST")


def _quoted(text: str) -> str:
    # A KLARF string cannot hold a double quote; a single one keeps the name readable.
    return '"' + text.replace('"', "'") + '"'


def _num(v: float) -> str:
    """The shortest text that reads back as the same float; "NA" for a missing value.

    Whole numbers are written without ".0" (``SampleSize 1 200``, as tools write it), which a
    reader that parses integers accepts too.
    """
    v = float(v)
    if math.isnan(v):
        return "NA"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def klarf_frame(m: WaferMap) -> CoordFrame:
    """The map's own frame when its axes are KLARF's (x right, y up), else one that is.

    Another format's frame (y growing downward) is replaced by raster column = ``XINDEX`` and
    the bottom raster row = ``YINDEX`` 0, with the same notch side.
    """
    f = m.frame
    if (f.x_step, f.y_step) == (1, -1):
        return f
    rows, _ = f.raster_shape(m.shape)
    return CoordFrame(notch=f.notch, x_origin=0, y_origin=rows - 1, x_step=1, y_step=-1)


def _shared_records(m: WaferMap) -> dict[str, str]:
    """The records KLARF writes for the lot (before the first wafer), as this wafer's values."""
    out = {
        "DeviceID": f"DeviceID {_quoted(m.product)};",
        "StepID": f"StepID {_quoted(m.step)};",
        "OrientationMarkLocation": f"OrientationMarkLocation {m.frame.notch.upper()};",
    }
    if m.diameter_mm is not None:
        out["SampleSize"] = f"SampleSize 1 {_num(m.diameter_mm)};"
    if m.die_pitch_um:
        out["DiePitch"] = f"DiePitch {_num(m.die_pitch_um[0])} {_num(m.die_pitch_um[1])};"
    return out


def _split_records(maps: Sequence[WaferMap]) -> tuple[list[str], list[list[str]]]:
    """Records every wafer shares (written once, for the lot), and each wafer's own.

    A record the wafers disagree on (synthetic lots mix die pitches) is written after each
    WaferID instead, where a reader takes it as that wafer's.
    """
    each = [_shared_records(m) for m in maps]
    keys = list(dict.fromkeys(k for e in each for k in e))
    shared = [k for k in keys if all(e.get(k) == each[0].get(k) for e in each)]
    own = [[e[k] for k in keys if k not in shared and k in e] for e in each]
    return [each[0][k] for k in shared], own


def _class_lookup(m: WaferMap, inked: bool) -> dict[int, str]:
    if inked:
        return {0: "none", **{c.id: c.name for c in PATTERN_CLASSES}}
    kept = m.extra.get("class_lookup")
    return {int(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else {}


def _defects(
    m: WaferMap, mask: npt.NDArray[np.uint8] | None
) -> list[tuple[int, int, float, float, float, int]]:
    """(row, col, x in die, y in die, size, class) per defect, a centre one per bare fail die."""
    pitch = m.die_pitch_um or (0.0, 0.0)
    out = [(d.row, d.col, d.x_um, d.y_um, d.size_um, d.class_code) for d in m.defects]
    covered = {(d.row, d.col) for d in m.defects}
    for r, c in np.argwhere(m.grid == FAIL).tolist():
        if (r, c) not in covered:
            out.append((r, c, pitch[0] / 2, pitch[1] / 2, 0.0, 0))
    if mask is not None:
        out = [(r, c, x, y, s, int(mask[r, c])) for r, c, x, y, s, _ in out]
    return out


def _wafer_lines(m: WaferMap, own: list[str]) -> list[str]:
    frame = klarf_frame(m)
    mask = inked_mask(m)
    lines = [f"WaferID {_quoted(m.wafer_id)};", *own]
    if m.slot is not None:
        lines.append(f"Slot {m.slot};")
    dies = np.argwhere(m.grid > 0)
    xs, ys = zip(*(frame.canonical_to_file(r, c, m.shape) for r, c in dies.tolist()), strict=True)
    centre = m.extra.get("sample_center_um")  # a KLARF map's own
    if centre is None and m.die_pitch_um:
        px, py = m.die_pitch_um
        # The wafer centre in die (0, 0)'s frame: the middle of the dies' bounding box.
        centre = ((min(xs) + max(xs) + 1) * px / 2, (min(ys) + max(ys) + 1) * py / 2)
    if centre is not None:
        lines.append(f"SampleCenterLocation {_num(centre[0])} {_num(centre[1])};")
    lookup = _class_lookup(m, mask is not None)
    if lookup:
        names = "".join(f"\n {k} {_quoted(v)}" for k, v in sorted(lookup.items()))
        lines.append(f"ClassLookup {len(lookup)}{names};")
    lines.append("InspectionTest 1;")
    plan = "".join(f"\n {x} {y}" for x, y in zip(xs, ys, strict=True))
    lines.append(f"SampleTestPlan {len(xs)}{plan};")
    defects = _defects(m, mask)
    lines.append(f"DefectRecordSpec {len(_SPEC)} {' '.join(_SPEC)};")
    rows = []
    for k, (r, c, x, y, size, cls) in enumerate(defects, start=1):
        fx, fy = frame.canonical_to_file(r, c, m.shape)
        rows.append(f"\n {k} {_num(x)} {_num(y)} {fx} {fy} {_num(size)} {cls} 1")
    lines.append("DefectList" + "".join(rows) + ";")
    ndefdie = len({(r, c) for r, c, *_ in defects})
    lines.append("SummarySpec 4 TESTNO NDEFECT NDIE NDEFDIE;")
    lines.append(f"SummaryList\n 1 {len(defects)} {len(xs)} {ndefdie};")
    return lines


def write_klarf(maps: Sequence[WaferMap], path: Path) -> None:
    """Write one lot's maps as a KLARF 1.2 file.

    Raises:
        InvalidInputError: No maps, maps of several lots, or a map without dies.
    """
    if not maps:
        raise InvalidInputError("expected at least one wafer to write as KLARF, found none")
    lots = sorted({m.lot for m in maps})
    if len(lots) > 1:
        raise InvalidInputError(
            f"a KLARF file holds one lot; found wafers of {len(lots)} lots "
            f"({', '.join(map(repr, lots[:3]))}): write each lot to its own file"
        )
    empty = [m.wafer_id for m in maps if not m.dies]
    if empty:
        raise InvalidInputError(f"expected dies on every wafer, found none on {empty[0]!r}")
    shared, own = _split_records(maps)
    now = datetime.now().strftime("%m-%d-%y %H:%M:%S")
    lines = [
        "FileVersion 1 2;",
        f"FileTimestamp {now};",
        'InspectionStationID "WaferSeg" "Studio" "export";',
        "SampleType WAFER;",
        f"ResultTimestamp {now};",
        f"LotID {_quoted(lots[0])};",
        f'SetupID "waferseg" {now};',
        "SampleOrientationMarkType NOTCH;",
        *shared,
        "DieOrigin 0.0 0.0;",
    ]
    for m, records in zip(maps, own, strict=True):
        lines += _wafer_lines(m, records)
    lines.append("EndOfFile;")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
