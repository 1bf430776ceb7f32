"""Reader speed on big real and generated files, against a same-run baseline.

    .venv/bin/python bench/formats_bench.py [--repeat 5]

KLARF: the ~22k-defect real file of ../shared/data (goal <= 0.3 s). STDF: a generated file of
~1,600 dies with ~50k PTR test records (goal <= 1 s). The baseline is the cheapest possible pass
over the same bytes (read + whitespace split for KLARF, read + walking the record headers for
STDF): the ratio says how much our parsing costs on top of touching the data. The KLARF
file is also written back, timed against its reading.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from waferseg_core import formats
from waferseg_core.formats.stdf import encode_stdf
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import WaferMap

KLARF = Path("../shared/data/formats/klarf/wafermapclustering__LARGE_KLARF.000")


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def walk_records(p: Path) -> int:
    data = p.read_bytes()
    pos = n = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<H", data, pos)
        pos += 4 + length
        n += 1
    return n


def stdf_file(tmp: Path) -> tuple[Path, int, int]:
    # A 45 x 45 round wafer: ~1,600 dies, 31 tests each (~50k PTR records).
    yy, xx = np.mgrid[0:45, 0:45]
    grid = np.where(np.hypot(yy - 22, xx - 22) <= 22.6, 1, 0).astype(np.uint8)
    grid[(grid == 1) & (np.random.default_rng(0).random(grid.shape) < 0.1)] = 2
    m = WaferMap(grid=grid, lot="BENCH", wafer_id="1")
    p = tmp / "bench.stdf"
    p.write_bytes(encode_stdf([m], tests_per_die=31))
    return p, m.dies, walk_records(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    out = {}
    if KLARF.exists():
        t_read = best(lambda: formats.read(KLARF), args.repeat)
        t_base = best(lambda: KLARF.read_text().split(), args.repeat)
        (m,) = formats.read(KLARF)
        with tempfile.TemporaryDirectory() as d:
            written = Path(d) / "back.klarf"
            t_write = best(lambda: formats.write([m], written, "klarf"), args.repeat)
        out["klarf"] = {
            "file": KLARF.name,
            "defects": len(m.defects),
            "seconds": round(t_read, 4),
            "baseline_split_seconds": round(t_base, 4),
            "ratio_to_baseline": round(t_read / t_base, 1),
            "goal_seconds": 0.3,
            "meets_goal": t_read <= 0.3,
            # Writing it back (formats.write(..., "klarf")), against reading it.
            "write_seconds": round(t_write, 4),
            "write_over_read": round(t_write / t_read, 2),
        }
    with tempfile.TemporaryDirectory() as d:
        p, dies, records = stdf_file(Path(d))
        t_read = best(lambda: formats.read(p), args.repeat)
        t_base = best(lambda: walk_records(p), args.repeat)
        out["stdf"] = {
            "dies": dies,
            "records": records,
            "seconds": round(t_read, 4),
            "baseline_walk_seconds": round(t_base, 4),
            "ratio_to_baseline": round(t_read / t_base, 1),
            "goal_seconds": 1.0,
            "meets_goal": t_read <= 1.0,
        }
    # G85 write+read of a 300 x 300-die synthetic wafer, for scale.
    big = next(
        generate_wafer(1, i).wafer for i in range(200) if generate_wafer(1, i).wafer.cols > 250
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "big.xml"
        q = Path(d) / "big.png"
        formats.write([big], p, "g85")
        formats.write([big], q, "png")
        t_read = best(lambda: formats.read(p), args.repeat)
        t_png = best(lambda: formats.read(q), args.repeat)
        out["g85_big"] = {
            "rows": big.rows,
            "cols": big.cols,
            "seconds": round(t_read, 4),
            "baseline_png_seconds": round(t_png, 4),
            "ratio_to_baseline": round(t_read / t_png, 1),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
