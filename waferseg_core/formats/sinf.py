"""SINF text maps (``KEY:value`` header, ``RowData:`` lines of 2-digit hex bins, ``__`` no die).

``BCEQU`` lists the passing bin codes (default ``01``); ``FNLOC`` is the flat/notch angle
clockwise from the top (0 up, 90 right, 180 down, 270 left). Rows run top to bottom; x grows to
the right and y downward from the upper-left die, offset by ``REFPX``/``REFPY`` when present.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register, write_each
from waferseg_core.formats.bins import default_bins
from waferseg_core.formats.textio import read_text
from waferseg_core.wafer import FAIL, NO_DIE, PASS, BinDef, CoordFrame, Notch, WaferMap

NAME = "sinf"
_NULL = {"__", "@@", "--", "..", "  "}
_FNLOC: dict[int, Notch] = {0: "up", 90: "right", 180: "down", 270: "left"}
_DEG = {v: k for k, v in _FNLOC.items()}


def _sniff(head: bytes, name: str) -> bool:
    return (
        bool(re.search(rb"^(DEVICE|LOT|WAFER|FNLOC|ROWCT)\s*:", head[:600], re.M))
        and b"RowData" in head
    )


def read_sinf(path: Path) -> list[WaferMap]:
    """Read one SINF map."""
    text = read_text(path)
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise WaferFileError(
                str(path), f"expected 'KEY:value', found {line.strip()[:40]!r}", line=n
            )
        if key.strip().lower() == "rowdata":
            toks = value.split()
            for t in toks:
                if t not in _NULL and not re.fullmatch(r"[0-9A-Fa-f]{2,4}", t):
                    raise WaferFileError(
                        str(path), f"RowData: {t!r} is not a hex bin code or '__'", line=n
                    )
            rows.append(toks)
        else:
            header[key.strip().upper()] = value.strip()
    if not rows:
        raise WaferFileError(str(path), "expected RowData lines, found none")
    width = max(len(r) for r in rows)
    for key, actual in (("ROWCT", len(rows)), ("COLCT", width)):
        if header.get(key, "").isdigit() and int(header[key]) != actual:
            raise WaferFileError(str(path), f"{key} is {header[key]} but the RowData has {actual}")
    bins = np.full((len(rows), width), -1, np.int64)
    for i, r in enumerate(rows):
        bins[i, : len(r)] = [-1 if t in _NULL else int(t, 16) for t in r]
    passing = {
        int(c, 16) for c in header.get("BCEQU", "01").split() if re.fullmatch(r"[0-9A-Fa-f]+", c)
    }
    grid = np.where(bins < 0, NO_DIE, np.where(np.isin(bins, list(passing)), PASS, FAIL)).astype(
        np.uint8
    )
    try:
        fnloc = int(float(header.get("FNLOC", "180") or 180)) % 360
        ref = (int(header.get("REFPX", "0") or 0), int(header.get("REFPY", "0") or 0))
    except ValueError:
        raise WaferFileError(
            str(path),
            f"FNLOC/REFPX/REFPY must be numbers, found {header.get('FNLOC')!r}, "
            f"{header.get('REFPX')!r}, {header.get('REFPY')!r}",
        ) from None
    frame = CoordFrame(_FNLOC.get(round(fnloc / 90) * 90 % 360, "down"), ref[0], ref[1], 1, 1)
    table = {c: BinDef(c, c in passing) for c in np.unique(bins[bins >= 0]).tolist()}
    pitch = None
    try:
        if header.get("XDIES") and header.get("YDIES"):
            scale = 1000.0 if header.get("DUTMS", "mm").lower() == "mm" else 1.0
            pitch = (float(header["XDIES"]) * scale, float(header["YDIES"]) * scale)
    except ValueError:
        pitch = None
    return [
        WaferMap(
            grid=frame.raster_to_canonical(grid),
            bins=frame.raster_to_canonical(bins).astype(np.int32),
            bin_table=table,
            lot=header.get("LOT", ""),
            wafer_id=header.get("WAFER", ""),
            source_file=str(path),
            source_format=NAME,
            product=header.get("DEVICE", ""),
            die_pitch_um=pitch,
            frame=frame,
        )
    ]


def sinf_bytes(m: WaferMap) -> bytes:
    """The SINF text of one map (UTF-8)."""
    bins, table = default_bins(m)
    raster = m.frame.canonical_to_raster(bins)
    passing = " ".join(f"{c:02X}" for c in sorted(table) if table[c].passed) or "01"
    lines = [
        f"DEVICE:{m.product}",
        f"LOT:{m.lot}",
        f"WAFER:{m.wafer_id}",
        f"FNLOC:{_DEG[m.frame.notch]}",
        f"ROWCT:{raster.shape[0]}",
        f"COLCT:{raster.shape[1]}",
        f"BCEQU:{passing}",
        f"REFPX:{m.frame.x_origin}",
        f"REFPY:{m.frame.y_origin}",
        "DUTMS:um",
    ]
    if m.die_pitch_um:
        lines += [f"XDIES:{m.die_pitch_um[0]:g}", f"YDIES:{m.die_pitch_um[1]:g}"]
    lines += [
        "RowData:" + " ".join("__" if v < 0 else f"{v:02X}" for v in row) for row in raster.tolist()
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_sinf(maps: Sequence[WaferMap], path: Path) -> None:
    """Write one map (several maps: one file each, ``<stem>_<wafer>.sinf``)."""
    write_each(maps, path, path.suffix or ".sinf", sinf_bytes)


FORMAT = register(
    FileFormat(NAME, "SINF text wafer map", (".sinf", ".inf"), _sniff, read_sinf, write_sinf)
)
