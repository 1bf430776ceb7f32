"""KLARF inspection results (1.1 / 1.2 keyword records, 1.8 nested records) as die grids.

A KLARF wafer becomes a die grid: the dies of the ``SampleTestPlan`` are on the wafer (when a
file has no test plan, the dies that fit inside the wafer circle from ``SampleSize``,
``DiePitch``, ``DieOrigin`` and ``SampleCenterLocation``), and a die with at least one defect
fails. Die indices grow to the right (x) and upward (y); ``OrientationMarkLocation`` gives the
notch side. The defect list is kept on the map for display.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.formats.klarf_writer import write_klarf
from waferseg_core.formats.textio import line_of, read_text
from waferseg_core.wafer import CoordFrame, Defect, Notch, WaferMap

NAME = "klarf"
_TOKEN = re.compile(r'"[^"]*"|[;{},]|[^\s;{},"]+')
# Records that describe the lot or the inspection, not one wafer: they apply to every wafer after.
_HEADER_KEYS = frozenset(
    {
        "LotID",
        "DeviceID",
        "StepID",
        "SetupID",
        "SampleSize",
        "SummarySpec",
        "SampleOrientationMarkType",
        "OrientationMarkLocation",
        "DiePitch",
        "DieOrigin",
        "FileVersion",
        "InspectionStationID",
    }
)
_NOTCH: dict[str, Notch] = {"DOWN": "down", "UP": "up", "LEFT": "left", "RIGHT": "right"}


def _sniff(head: bytes, name: str) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return text.startswith(b"FileVersion") or (
        text.startswith(b"Record") and b"FileRecord" in text[:64]
    )


@dataclass
class _Wafer:
    """What the records say about one wafer, before it becomes a die grid."""

    wafer_id: str
    header: dict[str, list[str]] = field(default_factory=dict)
    slot: int | None = None
    plan: list[tuple[int, int]] = field(default_factory=list)
    spec: list[str] = field(default_factory=list)
    defects: list[list[str]] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    token: int = 0  # index of the token that starts it, for error lines


def _unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == '"' and tok[-1] == '"' else tok


class _Tokens:
    """Tokens of a text; offsets (for error lines) are found again only when an error needs one."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.toks: list[str] = _TOKEN.findall(text)
        self._starts: list[int] | None = None

    def line(self, i: int) -> int:
        if self._starts is None:
            self._starts = [m.start() for m in _TOKEN.finditer(self.text)]
        if not self._starts:
            return 1
        return line_of(self.text, self._starts[max(0, min(i, len(self._starts) - 1))])

    def error(self, i: int, message: str) -> WaferFileError:
        return WaferFileError(self.path, message, line=self.line(i))


def _records_1x(tk: _Tokens) -> Iterator[tuple[int, str, list[str]]]:
    """(token index, keyword, values) of each ``;``-terminated record."""
    toks = tk.toks
    i, n = 0, len(toks)
    while i < n:
        start = i
        while i < n and toks[i] != ";":
            i += 1
        if i == n:
            if toks[start] == "EndOfFile":
                return
            raise tk.error(start, f"record {toks[start]} is not closed by ';' (file truncated?)")
        if i > start:
            yield start, toks[start], toks[start + 1 : i]
        i += 1


def _parse_1x(tk: _Tokens) -> list[_Wafer]:
    header: dict[str, list[str]] = {}
    wafers: list[_Wafer] = []
    cur: _Wafer | None = None
    saw_end = False
    for i, key, vals in _records_1x(tk):
        if key == "EndOfFile":
            saw_end = True
            break
        if key == "WaferID":
            # The records before the first WaferID are the lot's, so every wafer's; one that a
            # wafer repeats after its WaferID is that wafer's own (a lot may mix die pitches).
            cur = _Wafer(_unquote(vals[0]) if vals else "", header=dict(header), token=i)
            wafers.append(cur)
        elif cur is None:
            header[key] = vals
        elif key in _HEADER_KEYS:
            cur.header[key] = vals
            if key == "SummarySpec":  # the columns of every SummaryList after it
                header[key] = vals
        elif key == "Slot":
            cur.slot = _int(tk, i, vals[0] if vals else "", "Slot")
        elif key in ("SampleCenterLocation", "ClassLookup"):
            cur.header[key] = vals
        elif key == "SampleTestPlan":
            cur.plan.extend(_pairs(tk, i, vals, "SampleTestPlan"))
        elif key == "DefectRecordSpec":
            cur.spec = [v.upper() for v in vals[1:]]
            if not vals or _int(tk, i, vals[0], "DefectRecordSpec") != len(cur.spec):
                raise tk.error(
                    i,
                    f"DefectRecordSpec announces {vals[0] if vals else 'no'} columns, "
                    f"lists {len(cur.spec)}",
                )
        elif key == "DefectList":
            if vals and not cur.spec:
                raise tk.error(i, "DefectList before any DefectRecordSpec")
            cur.defects.extend(_defect_rows(tk, i, cur.spec, vals))
        elif key == "SummaryList":
            spec = header.get("SummarySpec", [])
            names = [v.upper() for v in spec[1:]]
            cur.summary = dict(zip(names, vals, strict=False))
    if not saw_end:
        raise WaferFileError(
            tk.path, "expected EndOfFile; the file is truncated", line=tk.line(len(tk.toks) - 1)
        )
    return wafers


def _defect_rows(tk: _Tokens, i: int, spec: list[str], vals: list[str]) -> list[list[str]]:
    """Split a DefectList's values into rows; IMAGELIST is 'n' then n (image, type) pairs."""
    width = len(spec)
    if spec and spec[-1] == "IMAGELIST":
        rows, k, fixed = [], 0, width - 1
        while k < len(vals):
            if k + fixed >= len(vals):
                raise tk.error(
                    i, f"DefectList ends inside a defect row ({len(vals) - k} of {width} columns)"
                )
            n = _int(tk, i, vals[k + fixed], "IMAGELIST count")
            rows.append(vals[k : k + fixed + 1])
            k += fixed + 1 + 2 * n
        if k != len(vals):
            raise tk.error(i, "DefectList ends inside an IMAGELIST")
        return rows
    if len(vals) % width:
        raise tk.error(
            i,
            f"DefectList holds {len(vals)} values, expected a multiple of "
            f"the {width} DefectRecordSpec columns",
        )
    return [vals[k : k + width] for k in range(0, len(vals), width)]


# ---- KLARF 1.8: Record / Field / List blocks -------------------------------------------------


@dataclass
class _Node:
    kind: str
    name: str
    ident: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    lists: dict[str, tuple[list[str], list[list[str]]]] = field(default_factory=dict)
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None
    line: int = 0

    def lookup(self, key: str) -> list[str] | None:
        node: _Node | None = self
        while node is not None:
            if key in node.fields:
                return node.fields[key]
            node = node.parent
        return None


def _parse_18(tk: _Tokens) -> list[_Wafer]:
    toks = tk.toks
    pos = 0

    def expect(tok: str) -> None:
        nonlocal pos
        if pos >= len(toks) or toks[pos] != tok:
            found = toks[pos] if pos < len(toks) else "end of file"
            raise tk.error(pos, f"expected '{tok}', found {found!r}")
        pos += 1

    def values_until_close() -> list[str]:
        nonlocal pos
        out = []
        while pos < len(toks) and toks[pos] != "}":
            if toks[pos] != ",":
                out.append(toks[pos])
            pos += 1
        expect("}")
        return out

    def record(parent: _Node | None) -> _Node:
        nonlocal pos
        start = pos
        expect("Record")
        if pos + 1 >= len(toks):
            raise tk.error(start, "Record is truncated")
        name = toks[pos]
        pos += 1
        ident = ""
        if toks[pos] != "{":
            ident = _unquote(toks[pos])
            pos += 1
        node = _Node("Record", name, ident, parent=parent, line=start)
        expect("{")
        while pos < len(toks) and toks[pos] != "}":
            kind = toks[pos]
            if kind == "Record":
                node.children.append(record(node))
            elif kind == "Field":
                if pos + 3 >= len(toks):
                    raise tk.error(pos, "Field is truncated")
                fname = toks[pos + 1]
                pos += 3  # Field NAME COUNT
                expect("{")
                node.fields[fname] = [_unquote(v) for v in values_until_close()]
            elif kind == "List":
                lname = toks[pos + 1] if pos + 1 < len(toks) else ""
                pos += 2
                node.lists[lname] = list_block()
            else:
                raise tk.error(pos, f"expected Record, Field or List, found {kind!r}")
        expect("}")
        return node

    def list_block() -> tuple[list[str], list[list[str]]]:
        nonlocal pos
        expect("{")
        expect("Columns")
        pos += 1  # column count
        expect("{")
        decl = values_until_close()
        columns = [d.upper() for d in decl[1::2]]
        expect("Data")
        pos += 1
        expect("{")
        rows: list[list[str]] = []
        row: list[str] = []
        while pos < len(toks) and toks[pos] != "}":
            if toks[pos] == "Images":  # Images N { ... }: one value of the row
                row.append("Images")
                pos += 2
                expect("{")
                while pos < len(toks) and toks[pos] != "}":
                    pos += 1
                expect("}")
                continue
            if toks[pos] == ";":
                if len(row) != len(columns):
                    raise tk.error(pos, f"list row has {len(row)} values, expected {len(columns)}")
                rows.append(row)
                row = []
            else:
                row.append(_unquote(toks[pos]))
            pos += 1
        expect("}")
        expect("}")
        return columns, rows

    root = record(None)
    wafers = []
    for lot in (c for c in root.children if c.name == "LotRecord"):
        for wr in (c for c in lot.children if c.name == "WaferRecord"):
            w = _Wafer(wr.ident, token=wr.line)
            w.header["LotID"] = [lot.ident]
            for key in (
                "DeviceID",
                "StepID",
                "SampleSize",
                "OrientationMarkLocation",
                "DiePitch",
                "DieOrigin",
                "SampleCenterLocation",
            ):
                val = wr.lookup(key)
                if val is not None:
                    w.header[key] = val
            slot = wr.lookup("SlotNumber")
            if slot:
                w.slot = _int(tk, 0, slot[0], "SlotNumber")
            if "DefectList" in wr.lists:
                w.spec, w.defects = wr.lists["DefectList"]
            for test in (c for c in wr.children if c.name == "TestRecord"):
                cols, rows = test.lists.get("SampleTestPlanList", ([], []))
                if rows:
                    if "XINDEX" not in cols or "YINDEX" not in cols:
                        msg = "SampleTestPlanList needs XINDEX and YINDEX columns"
                        raise tk.error(test.line, msg)
                    xi, yi = cols.index("XINDEX"), cols.index("YINDEX")
                    w.plan.extend(
                        (_int(tk, 0, r[xi], "XINDEX"), _int(tk, 0, r[yi], "YINDEX")) for r in rows
                    )
            wafers.append(w)
    return wafers


# ---- shared ------------------------------------------------------------------------------------


def _int(tk: _Tokens, i: int, tok: str, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        try:
            f = float(tok)
        except ValueError:
            raise tk.error(i, f"{what}: expected an integer, found {tok!r}") from None
        if not f.is_integer():
            raise tk.error(i, f"{what}: expected an integer, found {tok!r}") from None
        return int(f)


def _float(tok: str) -> float:
    try:
        return float(tok)
    except ValueError:
        return math.nan  # "NA" and friends


def _pairs(tk: _Tokens, i: int, vals: list[str], what: str) -> list[tuple[int, int]]:
    if not vals:
        raise tk.error(i, f"{what}: expected a count, found nothing")
    count = _int(tk, i, vals[0], what)
    body = vals[1:]
    if len(body) != 2 * count:
        raise tk.error(i, f"{what} announces {count} dies, lists {len(body) / 2:g}")
    return [
        (_int(tk, i, body[k], what), _int(tk, i, body[k + 1], what)) for k in range(0, len(body), 2)
    ]


def _nums(vals: list[str] | None, n: int) -> list[float] | None:
    if not vals or len(vals) < n:
        return None
    out = [_float(v) for v in vals[:n]]
    return None if any(math.isnan(v) for v in out) else out


def _layout_from_geometry(w: _Wafer, tk: _Tokens) -> list[tuple[int, int]]:
    """Dies that fit inside the wafer circle, when the file has no SampleTestPlan."""
    size = _nums(w.header.get("SampleSize"), 2)
    pitch = _nums(w.header.get("DiePitch"), 2)
    centre = _nums(w.header.get("SampleCenterLocation"), 2)
    origin = _nums(w.header.get("DieOrigin"), 2) or [0.0, 0.0]
    if not size or not pitch or not centre or pitch[0] <= 0 or pitch[1] <= 0 or size[1] <= 0:
        return []
    radius = size[1] * 1000.0 / 2.0
    px, py = pitch
    nx, ny = int(radius / px) + 2, int(radius / py) + 2
    if nx > 1000 or ny > 1000:
        raise tk.error(
            w.token,
            f"wafer {w.wafer_id!r}: DiePitch {px:g} x {py:g} um on a {size[1]:g} mm wafer "
            "gives more than 2000 dies across; expected at most 2000",
        )
    xi, yi = np.meshgrid(np.arange(-nx, nx + 1), np.arange(-ny, ny + 1))
    # Die (i, j) has its lower-left corner at i*px + DieOrigin relative to die (0, 0)'s origin;
    # SampleCenterLocation is the wafer centre in the same frame.
    x0 = xi * px + origin[0] - centre[0]
    y0 = yi * py + origin[1] - centre[1]
    far = np.maximum(np.hypot(x0, y0), np.hypot(x0 + px, y0))
    far = np.maximum(far, np.maximum(np.hypot(x0, y0 + py), np.hypot(x0 + px, y0 + py)))
    inside = far <= radius
    return [(int(a), int(b)) for a, b in zip(xi[inside], yi[inside], strict=True)]


def _class_lookup(vals: list[str] | None) -> dict[int, str]:
    """``ClassLookup N code "name" ...`` as {code: name}; empty when absent or not that shape.

    It only names the defect classes for display, so a lookup of another shape is passed over
    rather than refusing the wafers.
    """
    if not vals or len(vals) % 2 != 1 or not vals[0].isdigit() or int(vals[0]) * 2 + 1 != len(vals):
        return {}
    codes, names = vals[1::2], vals[2::2]
    if not all(c.lstrip("-").isdigit() for c in codes):
        return {}
    return {int(c): _unquote(n) for c, n in zip(codes, names, strict=True)}


def _column(rows: list[list[str]], k: int) -> np.ndarray:
    """One DefectList column as floats ("NA" and other non-numbers become NaN)."""
    col = [r[k] for r in rows]
    try:
        return np.array(col, dtype=np.float64)
    except ValueError:
        return np.array([_float(v) for v in col], dtype=np.float64)


def _to_map(w: _Wafer, tk: _Tokens, version: str) -> WaferMap:
    path = tk.path
    spec = w.spec
    n = len(w.defects)
    cols: dict[str, np.ndarray] = {}
    if n:
        missing = [k for k in ("XINDEX", "YINDEX") if k not in spec]
        if missing:
            raise tk.error(
                w.token, f"wafer {w.wafer_id!r}: DefectRecordSpec lacks {', '.join(missing)}"
            )
        for key in ("XINDEX", "YINDEX", "XREL", "YREL", "DSIZE", "CLASSNUMBER"):
            cols[key] = _column(w.defects, spec.index(key)) if key in spec else np.zeros(n)
        xi, yi = cols["XINDEX"], cols["YINDEX"]
        bad = ~(np.isfinite(xi) & np.isfinite(yi) & (xi == np.round(xi)) & (yi == np.round(yi)))
        if bad.any():
            k = int(np.argmax(bad))
            raise tk.error(
                w.token,
                f"wafer {w.wafer_id!r}: defect {w.defects[k][0]} has die index "
                f"{w.defects[k][spec.index('XINDEX')]!r}, "
                f"{w.defects[k][spec.index('YINDEX')]!r}; expected integers",
            )
    dx = cols["XINDEX"].astype(np.int64) if n else np.zeros(0, np.int64)
    dy = cols["YINDEX"].astype(np.int64) if n else np.zeros(0, np.int64)
    plan = w.plan or _layout_from_geometry(w, tk)
    px = np.array([p[0] for p in plan] + dx.tolist(), np.int64)
    py = np.array([p[1] for p in plan] + dy.tolist(), np.int64)
    if not len(px):
        raise tk.error(
            w.token,
            f"wafer {w.wafer_id!r}: no SampleTestPlan, no wafer geometry "
            "and no defects; expected at least one of them",
        )
    x0, y1 = int(px.min()), int(py.max())
    width, height = int(px.max()) - x0 + 1, y1 - int(py.min()) + 1
    if width * height > 4_000_000:
        raise tk.error(
            w.token,
            f"wafer {w.wafer_id!r}: die indices span {width} x {height}; "
            "expected at most 2000 x 2000",
        )
    raster = np.zeros((height, width), np.uint8)
    raster[y1 - py, px - x0] = 1
    raster[y1 - dy, dx - x0] = 2
    mark = (w.header.get("OrientationMarkLocation") or ["DOWN"])[0].strip('"').upper()
    frame = CoordFrame(
        notch=_NOTCH.get(mark, "down"), x_origin=x0, y_origin=y1, x_step=1, y_step=-1
    )
    grid = frame.raster_to_canonical(raster)
    pitch = _nums(w.header.get("DiePitch"), 2)
    size = _nums(w.header.get("SampleSize"), 2)
    m = WaferMap(
        grid=grid,
        lot=_unquote((w.header.get("LotID") or [""])[0]),
        wafer_id=w.wafer_id,
        slot=w.slot,
        source_file=path,
        source_format=NAME,
        product=_unquote((w.header.get("DeviceID") or [""])[0]),
        step=_unquote((w.header.get("StepID") or [""])[0]),
        die_pitch_um=(pitch[0], pitch[1]) if pitch else None,
        diameter_mm=size[1] if size else None,
        frame=frame,
        extra={
            "klarf_version": version,
            "summary": w.summary,
            "test_plan_dies": len(w.plan),
            "orientation_mark": mark,
        },
    )
    centre = _nums(w.header.get("SampleCenterLocation"), 2)
    if centre:
        m.extra["sample_center_um"] = centre  # written back as it was
    lookup = _class_lookup(w.header.get("ClassLookup"))
    if lookup:
        m.extra["class_lookup"] = lookup
    if n:
        rows, cols_c = frame.files_to_canonical(dx, dy, m.shape)
        cls = np.nan_to_num(cols["CLASSNUMBER"]).astype(np.int64)
        m.defects = tuple(
            Defect(int(r), int(c), float(a), float(b), float(sz), int(k))
            for r, c, a, b, sz, k in zip(
                rows.tolist(),
                cols_c.tolist(),
                cols["XREL"].tolist(),
                cols["YREL"].tolist(),
                cols["DSIZE"].tolist(),
                cls.tolist(),
                strict=True,
            )
        )
    return m


def read_klarf(path: Path) -> list[WaferMap]:
    """Read every wafer of a KLARF 1.1, 1.2 or 1.8 file."""
    text = read_text(path)
    tk = _Tokens(text, str(path))
    if not tk.toks:
        raise WaferFileError(str(path), "expected KLARF records, found an empty file")
    if tk.toks[0] == "Record":
        version = "1.8"
        wafers = _parse_18(tk)
    elif tk.toks[0] == "FileVersion":
        version = "1.x"
        wafers = _parse_1x(tk)
    else:
        raise tk.error(0, f"expected FileVersion or Record, found {tk.toks[0]!r}")
    if not wafers:
        raise WaferFileError(str(path), "expected at least one WaferID, found none")
    return [_to_map(w, tk, version) for w in wafers]


FORMAT = register(
    FileFormat(
        NAME,
        "KLARF 1.1/1.2/1.8 inspection results",
        (".klarf", ".000", ".001"),
        _sniff,
        read_klarf,
        write_klarf,
    )
)
