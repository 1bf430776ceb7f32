"""SEMI E142 substrate maps (XML): layouts, BinCodeMap with NullBin and BinDefinitions.

Every ``SubstrateMap`` with a ``BinCodeMap`` overlay becomes one wafer; lot and slot come from
the matching ``Substrate``. ``BinCode`` rows run top to bottom as displayed. ``OriginLocation``
(UpperLeft, UpperRight, LowerLeft, LowerRight, Center; default LowerLeft) and ``AxisDirection``
(UpRight, UpLeft, DownRight, DownLeft; default UpRight: x grows right, y grows up) give the die
coordinates; ``Orientation`` is the notch angle as in G85 (0 down, 90 left, 180 up, 270 right).
Any namespace (or none) is accepted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.formats.bins import (
    default_bins,
    degrees_from_notch,
    grid_from_bins,
    notch_from_degrees,
)
from waferseg_core.formats.g85 import parse_rows
from waferseg_core.formats.textio import read_text
from waferseg_core.wafer import BinDef, CoordFrame, WaferMap

NAME = "e142"
NAMESPACE = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap"
_AXES = {"upright": (1, -1), "upleft": (-1, -1), "downright": (1, 1), "downleft": (-1, 1)}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(el: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in el.iter() if _local(e.tag) == name), None)


def _sniff(head: bytes, name: str) -> bool:
    text = head[:4096].decode("latin-1", "replace")
    return "<MapData" in text or ("E142" in text and "<" in text[:100])


def _origin(location: str, axis: str, h: int, w: int, path: str) -> tuple[int, int, int, int]:
    """(x_origin, y_origin, x_step, y_step) for the raster."""
    try:
        x_step, y_step = _AXES[axis.replace(" ", "").lower() or "upright"]
    except KeyError:
        raise WaferFileError(
            path, f"AxisDirection must be UpRight, UpLeft, DownRight or DownLeft, found {axis!r}"
        ) from None
    loc = location.replace(" ", "").lower() or "lowerleft"
    if loc == "center":
        # Die (0, 0) at the middle of the array.
        return -(w // 2) * x_step, -(h // 2) * y_step, x_step, y_step
    corners = {
        "upperleft": (0, 0),
        "upperright": (w - 1, 0),
        "lowerleft": (0, h - 1),
        "lowerright": (w - 1, h - 1),
    }
    if loc not in corners:
        raise WaferFileError(
            path,
            f"OriginLocation must be UpperLeft, UpperRight, LowerLeft, LowerRight "
            f"or Center, found {location!r}",
        )
    col0, row0 = corners[loc]
    # x = x_origin + x_step * col is 0 at the origin corner's column.
    return -col0 * x_step, -row0 * y_step, x_step, y_step


def read_e142(path: Path) -> list[WaferMap]:
    """Read every substrate map with a BinCodeMap."""
    try:
        root = ET.fromstring(read_text(path))
    except ET.ParseError as exc:
        raise WaferFileError(
            str(path),
            f"expected well-formed E142 XML: {exc}",
            line=exc.position[0] if exc.position else None,
        ) from None
    substrates = {}
    for s in root.iter():
        if _local(s.tag) == "Substrate":
            lot_el = _find(s, "LotId")
            slot_el = _find(s, "SlotNumber")
            substrates[s.get("SubstrateId", "")] = (
                (lot_el.text or "").strip() if lot_el is not None else "",
                (slot_el.text or "").strip() if slot_el is not None else "",
            )
    layouts = {lay.get("LayoutId", ""): lay for lay in root.iter() if _local(lay.tag) == "Layout"}
    out = []
    for sm in (e for e in root.iter() if _local(e.tag) == "SubstrateMap"):
        bcm = _find(sm, "BinCodeMap")
        if bcm is None:
            continue
        wafer_id = sm.get("SubstrateId", "")
        bin_type = bcm.get("BinType", "Decimal")
        table: dict[int, BinDef] = {}
        for d in bcm.iter():
            if _local(d.tag) == "BinDefinition":
                (codes,), _ = parse_rows([d.get("BinCode", "")], bin_type, "", str(path))
                if len(codes) != 1:
                    raise WaferFileError(
                        str(path), f"BinDefinition needs one BinCode, found {d.get('BinCode')!r}"
                    )
                table[codes[0]] = BinDef(
                    codes[0],
                    d.get("BinQuality", "").strip().lower() == "pass",
                    d.get("BinDescription", ""),
                )
        rows = [e.text or "" for e in bcm if _local(e.tag) == "BinCode"]
        codes_rows, null_code = parse_rows(rows, bin_type, bcm.get("NullBin", ""), str(path))
        if not codes_rows:
            raise WaferFileError(
                str(path), f"substrate {wafer_id!r}: expected BinCode rows, found none"
            )
        width = max(len(r) for r in codes_rows)
        raster = np.full((len(codes_rows), width), null_code, np.int64)
        for i, r in enumerate(codes_rows):
            raster[i, : len(r)] = r
        null = raster == null_code
        h, w = raster.shape
        x0, y0, xs, ys = _origin(
            sm.get("OriginLocation", ""), sm.get("AxisDirection", ""), h, w, str(path)
        )
        try:
            orientation = float(sm.get("Orientation", "0") or 0)
        except ValueError:
            raise WaferFileError(
                str(path), f"Orientation must be a number, found {sm.get('Orientation')!r}"
            ) from None
        frame = CoordFrame(notch_from_degrees(orientation), x0, y0, xs, ys)
        lot, slot = substrates.get(wafer_id, ("", ""))
        pitch = None
        spec = sm.get("LayoutSpecifier", "").split("/")[-1]
        lay = layouts.get(spec)
        size = _find(lay, "DeviceSize") if lay is not None else None
        if size is not None:
            try:
                pitch = (float(size.get("X", "")), float(size.get("Y", "")))
            except ValueError:
                pitch = None
        out.append(
            WaferMap(
                grid=frame.raster_to_canonical(grid_from_bins(raster, null, table)),
                bins=frame.raster_to_canonical(np.where(null, -1, raster)).astype(np.int32),
                bin_table=table,
                lot=lot,
                wafer_id=wafer_id,
                slot=int(slot) if slot.isdigit() else None,
                source_file=str(path),
                source_format=NAME,
                die_pitch_um=pitch,
                frame=frame,
                extra={"bin_type": bin_type, "null_bin": bcm.get("NullBin", "")},
            )
        )
    if not out:
        raise WaferFileError(str(path), "expected a SubstrateMap with a BinCodeMap, found none")
    return out


_LOCATION = {(0, 0): "UpperLeft", (1, 0): "UpperRight", (0, 1): "LowerLeft", (1, 1): "LowerRight"}


def write_e142(maps: Sequence[WaferMap], path: Path) -> None:
    """Write maps as one E142 MapData document (Decimal or Integer2 bins, NullBin 255/FFFF)."""
    ET.register_namespace("", NAMESPACE)
    q = f"{{{NAMESPACE}}}"
    root = ET.Element(q + "MapData")
    layouts = ET.SubElement(root, q + "Layouts")
    subs = ET.SubElement(root, q + "Substrates")
    smaps = ET.SubElement(root, q + "SubstrateMaps")
    for i, m in enumerate(maps):
        bins, table = default_bins(m)
        raster = m.frame.canonical_to_raster(bins).astype(np.int64)
        h, w = raster.shape
        big = int(raster.max()) >= 255 if raster.size else False
        null = 0xFFFF if big else 255
        raster[raster < 0] = null
        lay_id = f"Devices{i + 1}"
        top = ET.SubElement(
            layouts,
            q + "Layout",
            {"LayoutId": f"Wafer{i + 1}", "DefaultUnits": "mm", "TopLevel": "true"},
        )
        ET.SubElement(top, q + "Dimension", {"X": "1", "Y": "1"})
        child = ET.SubElement(
            ET.SubElement(top, q + "ChildLayouts"), q + "ChildLayout", {"LayoutId": lay_id}
        )
        child.tail = None
        lay = ET.SubElement(layouts, q + "Layout", {"LayoutId": lay_id, "DefaultUnits": "micron"})
        ET.SubElement(lay, q + "Dimension", {"X": str(w), "Y": str(h)})
        if m.die_pitch_um:
            ET.SubElement(
                lay,
                q + "DeviceSize",
                {"X": f"{m.die_pitch_um[0]:g}", "Y": f"{m.die_pitch_um[1]:g}"},
            )
        sub = ET.SubElement(
            subs, q + "Substrate", {"SubstrateType": "Wafer", "SubstrateId": m.wafer_id}
        )
        ET.SubElement(sub, q + "LotId").text = m.lot
        if m.slot is not None:
            ET.SubElement(sub, q + "SlotNumber").text = str(m.slot)
        f = m.frame
        # The origin corner is where x and y are smallest: opposite the directions they grow.
        corner = _LOCATION[(0 if f.x_step == 1 else 1, 1 if f.y_step == -1 else 0)]
        axis = ("Up" if f.y_step == -1 else "Down") + ("Right" if f.x_step == 1 else "Left")
        sm = ET.SubElement(
            smaps,
            q + "SubstrateMap",
            {
                "SubstrateType": "Wafer",
                "SubstrateId": m.wafer_id,
                "LayoutSpecifier": f"Wafer{i + 1}/{lay_id}",
                "SubstrateSide": "TopSide",
                "OriginLocation": corner,
                "AxisDirection": axis,
                "Orientation": str(degrees_from_notch(f.notch)),
            },
        )
        ov = ET.SubElement(sm, q + "Overlay", {"MapName": "BinMap", "MapVersion": "1"})
        bcm = ET.SubElement(
            ov,
            q + "BinCodeMap",
            {
                "BinType": "Integer2" if big else "Decimal",
                "NullBin": f"{null:04X}" if big else str(null),
            },
        )
        defs = ET.SubElement(bcm, q + "BinDefinitions")
        for code in sorted(table):
            d = table[code]
            ET.SubElement(
                defs,
                q + "BinDefinition",
                {
                    "BinCode": f"{code:04X}" if big else str(code),
                    "BinCount": str(int((raster == code).sum())),
                    "BinQuality": "Pass" if d.passed else "Fail",
                    "BinDescription": d.description,
                },
            )
        for row in raster:
            ET.SubElement(bcm, q + "BinCode").text = (
                "".join(f"{v:04X}" for v in row) if big else " ".join(str(int(v)) for v in row)
            )
    ET.indent(root)
    path.write_bytes(
        b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
    )


FORMAT = register(
    FileFormat(
        NAME, "SEMI E142 substrate map XML", (".xml", ".e142"), _sniff, read_e142, write_e142
    )
)
