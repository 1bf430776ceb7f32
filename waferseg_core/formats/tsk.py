"""TSK (Accretech/Tokyo Seimitsu UF prober) binary map files.

Big-endian. A 236-byte header (operator, device, wafer size, index size, flat direction, row and
column counts, wafer id, lot, slot, axis directions, die counts, the address of the die data) is
followed by one 6-byte record per die, row by row. Per die: word 1 bits 15-14 the test result
(0 not tested, 1 pass, 2 and 3 fail), bits 8-0 the x coordinate; word 2 bits 15-14 the die
property (0 skip: no die, 1 probed, 2 marked), bits 8-0 the y coordinate; word 3 bits 5-0 the
category (bin). Dies that are skipped or not tested are off the map. The flat direction is in
degrees clockwise from the top (0 up, 90 right, 180 down, 270 left); x grows to the right when
the x-direction byte is 2 and to the left when it is 1, y grows downward when the y-direction
byte is 2 and upward when it is 1.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register, write_each
from waferseg_core.formats.bins import default_bins
from waferseg_core.wafer import FAIL, NO_DIE, PASS, BinDef, CoordFrame, Notch, WaferMap

NAME = "tsk"
HEADER = 236
_FLAT: dict[int, Notch] = {0: "up", 90: "right", 180: "down", 270: "left"}
_DEG = {v: k for k, v in _FLAT.items()}
# (offset, struct format) of the header fields we use.
_F = {
    "operator": (0, "20s"),
    "device": (20, "16s"),
    "wafer_size": (36, "H"),
    "index_x": (40, "I"),
    "index_y": (44, "I"),
    "flat": (48, "H"),
    "rows": (52, "H"),
    "cols": (54, "H"),
    "wafer_id": (57, "21s"),
    "lot": (79, "18s"),
    "slot": (99, "H"),
    "x_dir": (101, "B"),
    "y_dir": (102, "B"),
    "tested": (207, "H"),
    "passed": (209, "H"),
    "failed": (211, "H"),
    "data_at": (213, "I"),
}


def _sniff(head: bytes, name: str) -> bool:
    if len(head) < HEADER or not name.lower().endswith((".tsk", ".map")):
        return False
    rows, cols = struct.unpack_from(">HH", head, 52)
    (at,) = struct.unpack_from(">I", head, 213)
    return bool(0 < rows < 2000 and 0 < cols < 2000 and at >= HEADER)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def read_tsk(path: Path) -> list[WaferMap]:
    """Read one TSK map."""
    p = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferFileError(p, f"cannot read: {exc.strerror or exc}") from None
    if len(data) < HEADER:
        raise WaferFileError(
            p, f"expected a {HEADER}-byte TSK header, found {len(data)} bytes", offset=len(data)
        )
    h = {k: struct.unpack_from(">" + f, data, off)[0] for k, (off, f) in _F.items()}
    rows, cols, at = int(h["rows"]), int(h["cols"]), int(h["data_at"])
    if not (0 < rows <= 2000 and 0 < cols <= 2000):
        raise WaferFileError(
            p, f"expected 1-2000 rows and columns, found {rows} x {cols}", offset=52
        )
    need = at + 6 * rows * cols
    if at < HEADER or need > len(data):
        raise WaferFileError(
            p,
            f"die data for {rows} x {cols} dies needs {need} bytes from offset {at}, "
            f"file has {len(data)}",
            offset=min(len(data), max(at, 0)),
        )
    words = (
        np.frombuffer(data, ">u2", count=3 * rows * cols, offset=at)
        .reshape(rows, cols, 3)
        .astype(np.int64)
    )
    result, prop, cat = words[..., 0] >> 14, words[..., 1] >> 14, words[..., 2] & 0x3F
    on = (prop != 0) & (result != 0)
    raster = np.where(on, np.where(result == 1, PASS, FAIL), NO_DIE).astype(np.uint8)
    bins = np.where(on, cat, -1).astype(np.int32)
    xs = words[..., 0] & 0x1FF
    ys = words[..., 1] & 0x1FF
    x_step = 1 if h["x_dir"] != 1 else -1
    y_step = 1 if h["y_dir"] != 1 else -1
    # Recover the coordinate of raster (0, 0) from any die that carries coordinates.
    r0, c0 = np.argwhere(on)[0] if on.any() else (0, 0)
    x0 = int(xs[r0, c0]) - x_step * int(c0)
    y0 = int(ys[r0, c0]) - y_step * int(r0)
    flat = int(h["flat"]) % 360
    frame = CoordFrame(_FLAT.get(round(flat / 90) * 90 % 360, "down"), x0, y0, x_step, y_step)
    passing = {int(c) for c in np.unique(cat[on & (result == 1)])}
    table = {int(c): BinDef(int(c), int(c) in passing) for c in np.unique(bins[on])}
    pitch = (
        (float(h["index_x"]) / 10.0, float(h["index_y"]) / 10.0)
        if h["index_x"] and h["index_y"]
        else None
    )
    return [
        WaferMap(
            grid=frame.raster_to_canonical(raster),
            bins=frame.raster_to_canonical(bins),
            bin_table=table,
            lot=_text(h["lot"]),
            wafer_id=_text(h["wafer_id"]),
            slot=int(h["slot"]) or None,
            source_file=p,
            source_format=NAME,
            product=_text(h["device"]),
            die_pitch_um=pitch,
            diameter_mm=float(h["wafer_size"]) / 10.0 or None,
            frame=frame,
            extra={
                "operator": _text(h["operator"]),
                "header_counts": (h["tested"], h["passed"], h["failed"]),
            },
        )
    ]


def encode_tsk(m: WaferMap) -> bytes:
    """TSK bytes of one map (coordinates must fit 0-511)."""
    bins, _ = default_bins(m)
    raster = m.raster()
    rb = m.frame.canonical_to_raster(bins)
    rows, cols = raster.shape
    head = bytearray(HEADER)

    def put(key: str, value: object) -> None:
        off, fmt = _F[key]
        struct.pack_into(">" + fmt, head, off, value)

    f = m.frame
    put("operator", b"waferseg")
    put("device", m.product.encode("latin-1", "replace")[:16])
    put("wafer_size", round((m.diameter_mm or 0) * 10))
    pitch = m.die_pitch_um or (0.0, 0.0)
    put("index_x", round(pitch[0] * 10))
    put("index_y", round(pitch[1] * 10))
    put("flat", _DEG[f.notch])
    put("rows", rows)
    put("cols", cols)
    put("wafer_id", m.wafer_id.encode("latin-1", "replace")[:21])
    put("lot", m.lot.encode("latin-1", "replace")[:18])
    put("slot", m.slot or 0)
    put("x_dir", 2 if f.x_step == 1 else 1)
    put("y_dir", 2 if f.y_step == 1 else 1)
    put("tested", m.dies)
    put("passed", m.pass_dies)
    put("failed", m.fail_dies)
    put("data_at", HEADER)
    vr, vc = np.mgrid[0:rows, 0:cols]
    xs = f.x_origin + f.x_step * vc
    ys = f.y_origin + f.y_step * vr
    # TSK coordinates are unsigned: shift a map from a signed-coordinate format into range.
    xs, ys = xs - min(0, int(xs.min())), ys - min(0, int(ys.min()))
    if xs.max() > 511 or ys.max() > 511:
        raise WaferFileError(
            str(m.source_file or m.wafer_id), "TSK die coordinates must lie in 0-511"
        )
    result = np.select([raster == PASS, raster == FAIL], [1, 2], 0)
    w1 = (result << 14) | xs
    w2 = (np.where(raster > 0, 1, 0) << 14) | ys
    w3 = np.where(raster > 0, np.clip(rb, 0, 63), 0)
    words = np.stack([w1, w2, w3], axis=-1).astype(">u2")
    return bytes(head) + words.tobytes()


def write_tsk(maps: Sequence[WaferMap], path: Path) -> None:
    """Write one map (several: one file each, ``<stem>_<wafer>.tsk``)."""
    write_each(maps, path, ".tsk", encode_tsk)


FORMAT = register(
    FileFormat(
        NAME, "TSK (Accretech UF) binary prober map", (".tsk", ".map"), _sniff, read_tsk, write_tsk
    )
)
