"""SEMI G85 map data: the XML form (revisions 0703 and 1101) and its plain-text form.

Rows are written top to bottom as the map is displayed. ``Orientation`` is the notch (or flat)
angle, clockwise from the bottom: 0 down, 90 left, 180 up, 270 right. ``OriginLocation`` says
which corner die (0, 0) is in: 1 upper right, 2 upper left, 3 lower left, 4 lower right
(0 and missing read as upper left); x counts away from that corner along a row, y along a
column. Bin types: ASCII (one character per die), Decimal (numbers), HexaDecimal (2 hex digits),
Integer2 (4 hex digits), with or without separators. ``Rows``/``Columns`` that disagree with the
data, and header bin counts that disagree with the map, give warnings (kept in
``extra["warnings"]``); the data wins.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.formats.bins import (
    default_bins,
    degrees_from_notch,
    grid_from_bins,
    notch_from_degrees,
)
from waferseg_core.formats.textio import read_text
from waferseg_core.wafer import BinDef, CoordFrame, WaferMap

NAME = "g85"
TEXT_NAME = "g85-text"
NAMESPACE = "http://www.semi.org"
_CORNER_STEPS = {1: (-1, 1), 2: (1, 1), 3: (1, -1), 4: (-1, -1)}  # x_step, y_step per corner
_STEPS_CORNER = {v: k for k, v in _CORNER_STEPS.items()}
_WIDTH = {"ascii": 1, "hexadecimal": 2, "integer2": 4}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _sniff_xml(head: bytes, name: str) -> bool:
    text = head.decode("latin-1", "replace")
    has_map = re.search(r"<(\w+:)?Map[\s>]", text) is not None
    return has_map and (re.search(r"<(\w+:)?Device[\s>]", text) is not None or "G85" in text)


def _sniff_text(head: bytes, name: str) -> bool:
    return (
        bool(re.match(rb"\s*(G85\b|WAFER_?ID\s*[:=])", head[:200], re.I)) and b"<" not in head[:50]
    )


def parse_rows(rows: list[str], bin_type: str, null: str, path: str) -> tuple[list[list[int]], int]:
    """Rows of bin-code text -> codes (ints), and the null code as an int."""
    kind = bin_type.strip().lower()
    if kind not in ("ascii", "decimal", "hexadecimal", "integer2"):
        raise WaferFileError(
            path, f"BinType must be ASCII, Decimal, HexaDecimal or Integer2, found {bin_type!r}"
        )

    def code(tok: str, r: int) -> int:
        try:
            if kind == "ascii":
                if len(tok) != 1:
                    raise ValueError
                return ord(tok)
            return int(tok, 10 if kind == "decimal" else 16)
        except ValueError:
            raise WaferFileError(
                path, f"row {r + 1}: {tok!r} is not a {bin_type} bin code"
            ) from None

    out = []
    for r, row in enumerate(rows):
        text = row.strip()
        if kind == "decimal" or (kind != "ascii" and re.search(r"\s", text)):
            toks = text.split()
        elif kind == "ascii":
            spaced = text.split()
            toks = spaced if len(spaced) > 1 and all(len(t) == 1 for t in spaced) else list(text)
        else:
            width = _WIDTH[kind]
            if len(text) % width:
                raise WaferFileError(
                    path,
                    f"row {r + 1}: {len(text)} characters is not a multiple of "
                    f"{width} for BinType {bin_type}",
                )
            toks = [text[k : k + width] for k in range(0, len(text), width)]
        out.append([code(t, r) for t in toks])
    null_code = code(null, -1) if null else -1
    return out, null_code


def build_map(
    codes: list[list[int]],
    null_code: int,
    table: dict[int, BinDef],
    attrs: dict[str, str],
    path: str,
    fmt: str,
    warnings: list[str],
) -> WaferMap:
    """A WaferMap from parsed G85 rows and header attributes."""
    if not codes or not any(codes):
        raise WaferFileError(path, "expected map rows, found none")
    width = max(len(r) for r in codes)
    if any(len(r) != width for r in codes):
        short = next(i for i, r in enumerate(codes) if len(r) != width)
        warnings.append(
            f"row {short + 1} has {len(codes[short])} dies, others {width}; padded with null"
        )
    raster = np.full((len(codes), width), null_code, np.int64)
    for i, r in enumerate(codes):
        raster[i, : len(r)] = r
    for key, actual in (("Rows", len(codes)), ("Columns", width)):
        declared = attrs.get(key)
        if declared is None or not declared.strip().isdigit():
            warnings.append(f"{key} missing or not a number; using {actual} from the data")
        elif int(declared) != actual:
            warnings.append(f"{key}={declared} disagrees with the data ({actual}); the data wins")
    null = raster == null_code
    counts = attrs.get("_bin_counts", "")
    for item in filter(None, counts.split(";")):
        c, n = item.split("=")
        actual = int((raster[~null] == int(c)).sum())
        if int(n) != actual:
            warnings.append(
                f"bin {c}: header count {n} disagrees with the map ({actual}); the map wins"
            )
    try:
        orientation = float(attrs.get("Orientation", "0") or 0)
        corner = int(float(attrs.get("OriginLocation", "2") or 2))
    except ValueError:
        raise WaferFileError(
            path,
            f"Orientation/OriginLocation must be numbers, found "
            f"{attrs.get('Orientation')!r}/{attrs.get('OriginLocation')!r}",
        ) from None
    x_step, y_step = _CORNER_STEPS.get(corner, (1, 1))
    h, w = raster.shape
    frame = CoordFrame(
        notch=notch_from_degrees(orientation),
        x_origin=0 if x_step == 1 else w - 1,
        y_origin=0 if y_step == 1 else h - 1,
        x_step=x_step,
        y_step=y_step,
    )
    bins_raster = np.where(null, -1, raster)
    grid = frame.raster_to_canonical(grid_from_bins(raster, null, table))
    pitch = [attrs.get("DeviceSizeX"), attrs.get("DeviceSizeY")]
    die_pitch = None
    try:
        if pitch[0] and pitch[1]:
            die_pitch = (float(pitch[0]), float(pitch[1]))
        diameter = float(attrs["WaferSize"]) if attrs.get("WaferSize") else None
    except ValueError:
        raise WaferFileError(
            path,
            f"DeviceSizeX/Y and WaferSize must be numbers, found {pitch}, "
            f"{attrs.get('WaferSize')!r}",
        ) from None
    return WaferMap(
        grid=grid,
        bins=frame.raster_to_canonical(bins_raster).astype(np.int32),
        bin_table=table,
        lot=attrs.get("LotId", ""),
        wafer_id=attrs.get("WaferId", attrs.get("SubstrateId", "")),
        source_file=path,
        source_format=fmt,
        product=attrs.get("ProductId", ""),
        die_pitch_um=die_pitch,
        diameter_mm=diameter,
        frame=frame,
        extra={
            "bin_type": attrs.get("BinType", ""),
            "null_bin": attrs.get("NullBin", ""),
            "format_revision": attrs.get("FormatRevision", ""),
            "warnings": warnings,
        },
    )


def _bin_table(
    bins: list[dict[str, str]], bin_type: str, path: str
) -> tuple[dict[int, BinDef], str]:
    table: dict[int, BinDef] = {}
    counts = []
    for b in bins:
        raw = b.get("BinCode", "")
        row = parse_rows([raw], bin_type, "", path)[0][0] if raw else []
        if len(row) != 1:
            raise WaferFileError(path, f"Bin element needs one BinCode, found {raw!r}")
        quality = b.get("BinQuality", "").strip().lower()
        table[row[0]] = BinDef(row[0], quality == "pass", b.get("BinDescription", ""))
        if b.get("BinCount", "").strip().isdigit():
            counts.append(f"{row[0]}={int(b['BinCount'])}")
    return table, ";".join(counts)


def read_g85(path: Path) -> list[WaferMap]:
    """Read every map of a G85 XML file (a ``Maps`` root may hold several ``Map`` elements)."""
    try:
        root = ET.fromstring(read_text(path))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise WaferFileError(
            str(path),
            f"expected well-formed G85 XML: {exc.msg if hasattr(exc, 'msg') else exc}",
            line=line,
        ) from None
    maps = [e for e in root.iter() if _local(e.tag) == "Map"]
    if not maps:
        raise WaferFileError(
            str(path), f"expected a G85 <Map> element, found root <{_local(root.tag)}>"
        )
    out = []
    for mp in maps:
        device = next((e for e in mp.iter() if _local(e.tag) == "Device"), None)
        if device is None:
            raise WaferFileError(str(path), "expected a <Device> element inside <Map>")
        attrs = {**{k: v for k, v in mp.attrib.items()}, **device.attrib}
        bin_type = attrs.get("BinType", "ASCII")
        table, counts = _bin_table(
            [b.attrib for b in device.iter() if _local(b.tag) == "Bin"], bin_type, str(path)
        )
        attrs["_bin_counts"] = counts
        rows = [e.text or "" for e in device.iter() if _local(e.tag) == "Row"]
        codes, null_code = parse_rows(rows, bin_type, attrs.get("NullBin", ""), str(path))
        out.append(build_map(codes, null_code, table, attrs, str(path), NAME, []))
    return out


def _codes_text(raster: npt.NDArray[np.int64], width: int) -> list[str]:
    if width == 3:
        return [" ".join(f"{v:03d}" for v in row) for row in raster]
    return ["".join(f"{v:0{width}X}" for v in row) for row in raster]


def _prepare(m: WaferMap) -> tuple[npt.NDArray[np.int64], dict[int, BinDef], str, int, int, int]:
    bins, table = default_bins(m)
    raster = m.frame.canonical_to_raster(bins).astype(np.int64)
    biggest = int(raster.max()) if raster.size else 0
    kind, width, null = ("Decimal", 3, 255) if biggest < 255 else ("Integer2", 4, 0xFFFF)
    raster[raster < 0] = null
    corner = _STEPS_CORNER[(m.frame.x_step, m.frame.y_step)]
    return raster, table, kind, width, null, corner


def write_g85(maps: Sequence[WaferMap], path: Path) -> None:
    """Write maps as one G85 XML file (revision 1101), Decimal or Integer2 bins."""
    root = ET.Element("Maps")
    for m in maps:
        raster, table, kind, width, null, corner = _prepare(m)
        mp = ET.SubElement(
            root,
            "Map",
            {"xmlns:semi": NAMESPACE, "WaferId": m.wafer_id, "FormatRevision": "SEMI G85-1101"},
        )
        attrs = {
            "ProductId": m.product,
            "LotId": m.lot,
            "Rows": str(raster.shape[0]),
            "Columns": str(raster.shape[1]),
            "Orientation": str(degrees_from_notch(m.frame.notch)),
            "OriginLocation": str(corner),
            "BinType": kind,
            "NullBin": f"{null:03d}" if width == 3 else f"{null:04X}",
        }
        if m.die_pitch_um:
            attrs["DeviceSizeX"], attrs["DeviceSizeY"] = (f"{v:g}" for v in m.die_pitch_um)
        if m.diameter_mm:
            attrs["WaferSize"] = f"{m.diameter_mm:g}"
        dev = ET.SubElement(mp, "Device", attrs)
        for code in sorted(table):
            d = table[code]
            ET.SubElement(
                dev,
                "Bin",
                {
                    "BinCode": f"{code:03d}" if width == 3 else f"{code:04X}",
                    "BinCount": str(int((raster == code).sum())),
                    "BinQuality": "Pass" if d.passed else "Fail",
                    "BinDescription": d.description,
                },
            )
        data = ET.SubElement(dev, "Data", {"MapName": "Map", "MapVersion": "1"})
        for row in _codes_text(raster, width):
            ET.SubElement(data, "Row").text = row
    ET.indent(root)
    path.write_bytes(
        b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
    )


def read_g85_text(path: Path) -> list[WaferMap]:
    """Read the plain-text form of G85.

    ``Key: value`` header lines (G85 attribute names), ``Bin`` lines
    (``Bin: code count Pass|Fail [description]``), then ``Map:`` and one line per row.
    """
    lines = read_text(path).splitlines()
    attrs: dict[str, str] = {}
    bins: list[dict[str, str]] = []
    rows: list[str] = []
    in_map = False
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if in_map:
            if line.strip():
                rows.append(line)
            continue
        if not line.strip() or line.strip().upper() == "G85":
            continue
        match = re.match(r"\s*([\w ]+?)\s*[:=]\s*(.*)$", line)
        if not match:
            raise WaferFileError(
                str(path), f"expected 'Key: value' or 'Map:', found {line.strip()[:40]!r}", line=n
            )
        key, value = match.groups()
        norm = key.replace("_", "").replace(" ", "").lower()
        if norm == "map":
            in_map = True
        elif norm == "bin":
            parts = value.split(None, 3)
            if len(parts) < 3:
                raise WaferFileError(
                    str(path), f"Bin line needs code, count and Pass/Fail, found {value!r}", line=n
                )
            bins.append(
                {
                    "BinCode": parts[0],
                    "BinCount": parts[1],
                    "BinQuality": parts[2],
                    "BinDescription": parts[3] if len(parts) > 3 else "",
                }
            )
        else:
            canonical = {
                "waferid": "WaferId",
                "lotid": "LotId",
                "productid": "ProductId",
                "rows": "Rows",
                "columns": "Columns",
                "orientation": "Orientation",
                "originlocation": "OriginLocation",
                "bintype": "BinType",
                "nullbin": "NullBin",
                "wafersize": "WaferSize",
                "devicesizex": "DeviceSizeX",
                "devicesizey": "DeviceSizeY",
            }.get(norm, key)
            attrs[canonical] = value.strip().strip('"')
    if not in_map:
        raise WaferFileError(
            str(path), "expected a 'Map:' line before the rows, found none", line=len(lines)
        )
    bin_type = attrs.get("BinType", "ASCII")
    table, counts = _bin_table(bins, bin_type, str(path))
    attrs["_bin_counts"] = counts
    codes, null_code = parse_rows(rows, bin_type, attrs.get("NullBin", ""), str(path))
    return [build_map(codes, null_code, table, attrs, str(path), TEXT_NAME, [])]


FORMAT = register(
    FileFormat(
        NAME, "SEMI G85 XML map (0703, 1101)", (".xml", ".g85"), _sniff_xml, read_g85, write_g85
    )
)
TEXT_FORMAT = register(
    FileFormat(TEXT_NAME, "SEMI G85 map, plain-text form", (), _sniff_text, read_g85_text)
)
