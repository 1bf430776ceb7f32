"""Store speed and size for many synthetic wafers, on SQLite and PostgreSQL.

    .venv/bin/python bench/store_bench.py [--count 100000] [--pg postgresql+psycopg://postgres@127.0.0.1/postgres]

Prints per backend: import rate (wafers/s, in lots of 25 imported in batches of 2,000), lot
listing and filter latency (median of 20, goal <= 50 ms), and bytes per wafer. The baseline in the
same run is a bare ``SELECT 1`` round trip, so latencies read as multiples of the connection's cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer


def median_ms(fn, n=20):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def run(url: str, count: int, pool: list) -> dict:
    store = Store(url)
    user = store.login() if store.is_sqlite else store.add_user(None, "bench", "admin", "pw")
    t = time.perf_counter()
    batch: dict[str, list] = {}
    for n, i in enumerate(range(count), start=1):
        w = pool[i % len(pool)]
        w.lot, w.wafer_id = f"LOT{i // 25:05d}", str(i % 25 + 1)
        batch.setdefault(w.lot, []).append(w.with_grid(w.grid))  # a copy with this lot/wafer id
        if n % 2000 == 0 or n == count:
            store.import_lots(user, batch)
            batch = {}
    rate = count / (time.perf_counter() - t)
    mid = store.register_model(user, "bench", "/bench.onnx", "benchhash")
    store.promote(user, mid)
    with store.engine.connect() as c:
        base = median_ms(lambda: c.exec_driver_sql("select 1").all())
    target = f"LOT{count // 50:05d}"
    res = {
        "wafers": count,
        "import_wafers_per_s": round(rate, 1),
        "select1_ms": base,
        "list_lot_ms": median_ms(lambda: store.list_wafers(user, lot=target, worst_first=True)),
        "filter_pattern_ms": median_ms(lambda: store.list_wafers(user, lot=target, pattern="Loc")),
        "list_lots_ms": median_ms(lambda: store.lots(user), n=5),
    }
    if store.is_sqlite:
        db = Path(store.engine.url.database)
        with store.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        res["bytes_per_wafer"] = round(db.stat().st_size / count)
    else:
        with store.engine.connect() as c:
            size = c.exec_driver_sql("select pg_database_size(current_database())").scalar()
        res["bytes_per_wafer"] = round(size / count)
    store.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    pool = [generate_wafer(3, i).wafer for i in range(200)]
    pool = [w for w in pool if max(w.shape) <= 64][:100] or pool[:100]
    out = {"pool_mean_dies": round(float(np.mean([w.dies for w in pool])), 1)}
    with tempfile.TemporaryDirectory() as d:
        out["sqlite"] = run(f"sqlite:///{d}/bench.sqlite", args.count, pool)
    name = f"waferseg_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        out["postgresql"] = run(args.pg.rsplit("/", 1)[0] + "/" + name, args.count, pool)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
