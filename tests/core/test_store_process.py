"""The store under real processes: a killed import, concurrent editors, the CLI contract."""

import copy
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys

from waferseg_core.errors import ConflictError
from waferseg_core.formats.png import png_bytes
from waferseg_core.formats.wm811k import write_npz
from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]]}


def _cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "waferseg_core.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_sigkill_during_import_leaves_no_partial_lot(tmp_path, store_url):
    url = store_url
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    who: list[str] = []
    if backend == "postgresql":
        s = Store(url)
        s.add_user(None, "root", "admin", "pw")
        s.close()
        who = ["--user", "root"]
    # 3,000 wafers, ten of each of 300 synthetic ones (generating each takes ~5 ms).
    distinct = [generate_wafer(11, i).wafer for i in range(300)]
    maps = [copy.copy(distinct[i % 300]) for i in range(3000)]
    for i, m in enumerate(maps):
        m.lot, m.wafer_id = "BIG", str(i)
    write_npz(maps, tmp_path / "big.npz")
    proc = _cli(
        "--store", url, *who, "import", str(tmp_path / "big.npz"), env={"WAFERSEG_PASSWORD": "pw"}
    )
    line = proc.stderr.readline()  # "importing 200/3000": the transaction is open and half-written
    assert line.startswith("importing"), line
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store(url)
    user = store.login() if backend == "sqlite" else store.login("root", "pw")
    assert store.lots(user) == [] and store.list_wafers(user) == []
    store.close()


def _editor(url, wafer_annotations, rounds, seed, queue):
    import random

    store = Store(url, migrate=False)
    user = store.login(f"ed{seed}", "pw")
    rng = random.Random(seed)
    landed = conflicts = 0
    for _ in range(rounds):
        wid, aid = rng.choice(wafer_annotations)
        current = next(a for a in store.annotations(user, wid) if a["id"] == aid)
        try:
            store.save_annotation(
                user,
                wid,
                rng.randint(1, 8),
                SQUARE,
                annotation_id=aid,
                base_version=current["version"],
            )
            landed += 1
        except ConflictError:
            conflicts += 1
    store.close()
    queue.put((landed, conflicts))


def test_eight_processes_editing_the_same_wafers_lose_nothing(pg_store_url):
    store_url = pg_store_url
    store = Store(store_url)
    admin = store.add_user(None, "admin", "admin", "pw")
    for i in range(8):
        store.add_user(admin, f"ed{i}", "annotator", "pw")
    ids = store.import_lot(admin, "L", [generate_wafer(2, i).wafer for i in range(2)])
    targets = [(wid, store.save_annotation(admin, wid, 1, SQUARE)[0]) for wid in ids]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_editor, args=(store_url, targets, 25, i, q)) for i in range(8)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    landed = sum(r[0] for r in results)
    assert landed + sum(r[1] for r in results) == 8 * 25
    assert landed > 0
    total_updates = 0
    for wid, aid in targets:
        hist = [h for h in store.history(admin, wid) if h["annotation_id"] == aid]
        updates = [h for h in hist if h["action"] == "update"]
        total_updates += len(updates)
        # Versions form an unbroken chain: every landed save is one revision, none overwritten.
        assert [h["version"] for h in hist] == list(range(1, len(hist) + 1))
        ann = next(a for a in store.annotations(admin, wid) if a["id"] == aid)
        assert ann["version"] == len(hist)
    assert total_updates == landed
    store.close()


def test_import_cli_contract_and_all_or_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        w = generate_wafer(5, i).wafer
        (d / f"w{i}.png").write_bytes(png_bytes(w))
    proc = _cli("--store", url, "import", str(d), "--lot", "L7")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["wafers"] == 3 and summary["lots"]["L7"]["wafers"] == 3
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    proc = _cli("--store", url, "import", str(d), "--lot", "L8")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and out == "" and err.startswith("error: ") and "bad.png" in err
    assert "Traceback" not in err
    store = Store(url)
    assert [lot["name"] for lot in store.lots(store.login())] == ["L7"]
    store.close()


def test_users_cli_on_a_shared_store(pg_store_url):
    store_url = pg_store_url
    p = _cli(
        "--store",
        store_url,
        "users",
        "add",
        "root",
        "--role",
        "admin",
        env={"WAFERSEG_NEW_PASSWORD": "pw"},
    )
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    p = _cli(
        "--store",
        store_url,
        "--user",
        "root",
        "users",
        "add",
        "ann",
        "--role",
        "annotator",
        env={"WAFERSEG_PASSWORD": "pw", "WAFERSEG_NEW_PASSWORD": "a"},
    )
    assert p.wait(timeout=60) == 0
    p = _cli(
        "--store", store_url, "--user", "root", "users", "list", env={"WAFERSEG_PASSWORD": "wrong"}
    )
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "login failed" in err
    p = _cli(
        "--store", store_url, "--user", "ann", "import", "x.png", env={"WAFERSEG_PASSWORD": "a"}
    )
    p.communicate(timeout=60)
    assert p.returncode == 2
