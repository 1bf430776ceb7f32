"""STDF V4 tester data: one wafer per WIR ... WRR, dies from PRR records.

A small reader of the records we need (no maintained, fast Python STDF library exists; the
others are skipped by length): FAR (byte order), MIR (lot, part type, job), WIR/WRR (wafer id),
WCR (wafer size, die size, flat, centre, axis directions), PRR (die x/y, hard and soft bin,
part flag), HBR/SBR (bin tables). A die retested later counts with its last PRR. Pass/fail comes
from PRR's part flag (bit 3 set = fail; bit 4 set = no pass/fail flag, then the hard bin's
HBR P/F, then bin 1 = pass). WCR's ``WF_FLAT`` (U/D/L/R) is the notch side; ``POS_X`` (L/R) and
``POS_Y`` (U/D) are the directions in which x and y grow.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from waferseg_core.errors import WaferFileError
from waferseg_core.formats import FileFormat, register
from waferseg_core.formats.bins import default_bins
from waferseg_core.wafer import FAIL, NO_DIE, PASS, BinDef, CoordFrame, Notch, WaferMap

NAME = "stdf"
FAR, MIR, WIR, WRR, WCR, PRR, HBR, SBR = (
    (0, 10),
    (1, 10),
    (2, 10),
    (2, 20),
    (2, 30),
    (5, 20),
    (1, 40),
    (1, 50),
)
PIR, PTR, MRR = (5, 10), (15, 10), (1, 20)
_FLAT: dict[str, Notch] = {"U": "up", "D": "down", "L": "left", "R": "right"}


def _sniff(head: bytes, name: str) -> bool:
    # FAR: REC_LEN=2, REC_TYP=0, REC_SUB=10, CPU_TYPE, STDF_VER=4.
    return (
        len(head) >= 6
        and head[2:4] == b"\x00\x0a"
        and head[5] == 4
        and head[:2] in (b"\x02\x00", b"\x00\x02")
    )


class _Rec:
    """Sequential field reader over one record's bytes."""

    def __init__(self, data: bytes, end: str, path: str, offset: int) -> None:
        self.d, self.p, self.e, self.path, self.offset = data, 0, end, path, offset

    def _take(self, fmt: str) -> int | float:
        size = struct.calcsize(fmt)
        if self.p + size > len(self.d):
            raise EOFError
        (v,) = struct.unpack_from(self.e + fmt, self.d, self.p)
        self.p += size
        return v  # type: ignore[no-any-return]

    def u1(self) -> int:
        return int(self._take("B"))

    def u2(self) -> int:
        return int(self._take("H"))

    def u4(self) -> int:
        return int(self._take("I"))

    def i2(self) -> int:
        return int(self._take("h"))

    def r4(self) -> float:
        return float(self._take("f"))

    def c1(self) -> str:
        return chr(self.u1())

    def cn(self) -> str:
        n = self.u1()
        s = self.d[self.p : self.p + n]
        self.p += n
        return s.decode("latin-1")

    def more(self) -> bool:
        return self.p < len(self.d)


@dataclass
class _Wafer:
    wafer_id: str = ""
    dies: dict[tuple[int, int], tuple[int, int, int]] = field(
        default_factory=dict
    )  # xy -> flag, hbin, sbin


def read_stdf(path: Path) -> list[WaferMap]:
    """Read every wafer of an STDF V4 file."""
    p = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WaferFileError(p, f"cannot read: {exc.strerror or exc}") from None
    if len(data) < 6 or data[2:4] != b"\x00\x0a":
        raise WaferFileError(p, "expected an STDF file starting with a FAR record", offset=0)
    cpu = data[4]
    end = "<" if cpu == 2 else ">"
    if data[5] != 4:
        raise WaferFileError(p, f"expected STDF version 4, found {data[5]}", offset=5)
    lot = product = step = ""
    wcr: dict[str, object] = {}
    hbins: dict[int, BinDef] = {}
    wafers: list[_Wafer] = []
    cur: _Wafer | None = None
    pos, n = 0, len(data)
    unpack_hdr = struct.Struct(end + "HBB").unpack_from
    while pos < n:
        if pos + 4 > n:
            raise WaferFileError(p, "truncated record header", offset=pos)
        length, typ, sub = unpack_hdr(data, pos)
        body_at = pos + 4
        if body_at + length > n:
            raise WaferFileError(
                p,
                f"record ({typ},{sub}) claims {length} bytes, only {n - body_at} left "
                "(file truncated?)",
                offset=pos,
            )
        key = (typ, sub)
        if key in (MIR, WIR, WRR, WCR, PRR, HBR):
            r = _Rec(data[body_at : body_at + length], end, p, pos)
            try:
                if key == MIR:
                    r.u4(), r.u4(), r.u1(), r.c1(), r.c1(), r.c1(), r.u2(), r.c1()
                    lot, product = r.cn(), r.cn()
                    r.cn(), r.cn()
                    step = r.cn()
                elif key == WIR:
                    r.u1(), r.u1(), r.u4()
                    cur = _Wafer(r.cn() if r.more() else "")
                    wafers.append(cur)
                elif key == WRR:
                    r.u1(), r.u1(), r.u4(), r.u4(), r.u4(), r.u4(), r.u4(), r.u4()
                    wid = r.cn() if r.more() else ""
                    if cur is not None and wid and not cur.wafer_id:
                        cur.wafer_id = wid
                    cur = None
                elif key == WCR:
                    wcr = {
                        "size": r.r4(),
                        "ht": r.r4(),
                        "wid": r.r4(),
                        "units": r.u1(),
                        "flat": r.c1(),
                        "cx": r.i2(),
                        "cy": r.i2(),
                        "posx": r.c1(),
                        "posy": r.c1(),
                    }
                elif key == PRR:
                    r.u1(), r.u1()
                    flag = r.u1()
                    r.u2()
                    hb, sb, x, y = r.u2(), r.u2(), r.i2(), r.i2()
                    if cur is None:
                        cur = _Wafer("")
                        wafers.append(cur)
                    if x != -32768 and y != -32768:
                        cur.dies[(x, y)] = (
                            flag,
                            hb,
                            sb,
                        )  # a retest overwrites: the last result counts
                elif key == HBR:
                    r.u1(), r.u1()
                    num = r.u2()
                    r.u4()
                    pf = r.c1() if r.more() else " "
                    name = r.cn() if r.more() else ""
                    hbins[num] = BinDef(num, pf.upper() == "P", name)
            except EOFError:
                raise WaferFileError(
                    p, f"record ({typ},{sub}) is shorter than its fields", offset=pos
                ) from None
        pos = body_at + length
    wafers = [w for w in wafers if w.dies]
    if not wafers:
        raise WaferFileError(p, "expected PRR records with die coordinates, found none")
    return [_to_map(w, wcr, hbins, lot, product, step, p) for w in wafers]


def _to_map(
    w: _Wafer,
    wcr: dict[str, object],
    hbins: dict[int, BinDef],
    lot: str,
    product: str,
    step: str,
    path: str,
) -> WaferMap:
    xs = np.array([k[0] for k in w.dies], np.int64)
    ys = np.array([k[1] for k in w.dies], np.int64)
    vals = np.array(list(w.dies.values()), np.int64)
    posx, posy = str(wcr.get("posx", "R")).upper(), str(wcr.get("posy", "D")).upper()
    x_step = -1 if posx == "L" else 1
    y_step = -1 if posy == "U" else 1
    x0 = int(xs.min() if x_step == 1 else xs.max())
    y0 = int(ys.min() if y_step == 1 else ys.max())
    cols = int(xs.max() - xs.min() + 1)
    rows = int(ys.max() - ys.min() + 1)
    if rows * cols > 4_000_000:
        raise WaferFileError(
            path,
            f"wafer {w.wafer_id!r}: die coordinates span {cols} x {rows}; expected "
            "at most 2000 x 2000",
        )
    vc, vr = (xs - x0) * x_step, (ys - y0) * y_step
    flag, hb = vals[:, 0], vals[:, 1]
    no_flag = (flag & 0x10) != 0
    failed = (flag & 0x08) != 0
    by_bin = np.array([not hbins[b].passed if b in hbins else b != 1 for b in hb.tolist()], bool)
    failed = np.where(no_flag, by_bin, failed)
    raster = np.zeros((rows, cols), np.uint8)
    raster[vr, vc] = np.where(failed, FAIL, PASS)
    bins = np.full((rows, cols), -1, np.int32)
    bins[vr, vc] = hb
    flat = _FLAT.get(str(wcr.get("flat", "D")).upper(), "down")
    frame = CoordFrame(flat, x0, y0, x_step, y_step)
    scale = {1: 25400.0, 2: 10000.0, 3: 1000.0, 4: 1.0}.get(int(wcr.get("units", 0) or 0), 0.0)  # type: ignore[call-overload]
    pitch = None
    if scale and wcr.get("wid") and wcr.get("ht"):
        pitch = (float(wcr["wid"]) * scale, float(wcr["ht"]) * scale)  # type: ignore[arg-type]
    table = dict(hbins) or {b: BinDef(b, b == 1) for b in np.unique(hb).tolist()}
    return WaferMap(
        grid=frame.raster_to_canonical(raster),
        bins=frame.raster_to_canonical(bins),
        bin_table=table,
        lot=lot,
        wafer_id=w.wafer_id,
        source_file=path,
        source_format=NAME,
        product=product,
        step=step,
        die_pitch_um=pitch,
        frame=frame,
        extra={"stdf_dies": len(w.dies), "raster_no_die": int((raster == NO_DIE).sum())},
    )


# ---- writer (used for exports and to build test files) -----------------------------------------


def _cn(s: str) -> bytes:
    b = s.encode("latin-1", "replace")[:255]
    return bytes([len(b)]) + b


def _record(key: tuple[int, int], body: bytes) -> bytes:
    return struct.pack("<HBB", len(body), *key) + body


def encode_stdf(maps: Sequence[WaferMap], *, tests_per_die: int = 0, retest: bool = False) -> bytes:
    """STDF V4 bytes (little-endian) for maps.

    Optionally ``tests_per_die`` PTR records per die, and a failing first pass of every die
    followed by its real result (a retest).
    """
    out = [_record(FAR, bytes([2, 4]))]
    first = maps[0] if maps else None
    out.append(
        _record(
            MIR,
            struct.pack("<IIB", 0, 0, 1)
            + b"P  "
            + struct.pack("<H", 0)
            + b" "
            + _cn(first.lot if first else "")
            + _cn(first.product if first else "")
            + _cn("node")
            + _cn("tester")
            + _cn(first.step if first else ""),
        )
    )
    for m in maps:
        f = m.frame
        flat = {v: k for k, v in _FLAT.items()}[f.notch]
        pitch = m.die_pitch_um or (0.0, 0.0)
        out.append(
            _record(
                WCR,
                struct.pack(
                    "<fffB", (m.diameter_mm or 0) / 25.4, pitch[1] / 25400.0, pitch[0] / 25400.0, 1
                )
                + flat.encode()
                + struct.pack("<hh", 0, 0)
                + (b"L" if f.x_step == -1 else b"R")
                + (b"U" if f.y_step == -1 else b"D"),
            )
        )
        out.append(_record(WIR, struct.pack("<BBI", 1, 255, 0) + _cn(m.wafer_id)))
        bins, table = default_bins(m)
        good = 0
        for r, c in zip(*np.nonzero(m.grid), strict=True):
            x, y = m.canonical_to_file(int(r), int(c))
            passed = m.grid[r, c] == PASS
            good += int(passed)
            for _ in range(tests_per_die):
                out.append(
                    _record(
                        PTR, struct.pack("<IBBBBf", 1000, 1, 1, 0, 0, 1.5) + _cn("vdd") + _cn("")
                    )
                )
            if retest:
                out.append(_record(PIR, bytes([1, 1])))
                out.append(
                    _record(
                        PRR,
                        struct.pack("<BBBHHHhhI", 1, 1, 0x08, 1, 99, 99, x, y, 0)
                        + _cn("")
                        + _cn(""),
                    )
                )
            out.append(_record(PIR, bytes([1, 1])))
            out.append(
                _record(
                    PRR,
                    struct.pack(
                        "<BBBHHHhhI",
                        1,
                        1,
                        0 if passed else 0x08,
                        tests_per_die,
                        int(bins[r, c]),
                        int(bins[r, c]),
                        x,
                        y,
                        0,
                    )
                    + _cn("")
                    + _cn(""),
                )
            )
        out.append(
            _record(
                WRR, struct.pack("<BBIIIIII", 1, 255, 0, m.dies, 0, 0, good, 0) + _cn(m.wafer_id)
            )
        )
        for code in sorted(table):
            d = table[code]
            for key in (HBR, SBR):
                out.append(
                    _record(
                        key,
                        struct.pack("<BBHI", 255, 0, code, int((bins == code).sum()))
                        + (b"P" if d.passed else b"F")
                        + _cn(d.description),
                    )
                )
    out.append(_record(MRR, struct.pack("<I", 0)))
    return b"".join(out)


def write_stdf(maps: Sequence[WaferMap], path: Path) -> None:
    """Write maps as an STDF V4 file."""
    path.write_bytes(encode_stdf(maps))


FORMAT = register(
    FileFormat(NAME, "STDF V4 tester data", (".stdf", ".std"), _sniff, read_stdf, write_stdf)
)
