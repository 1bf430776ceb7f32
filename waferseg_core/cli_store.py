"""``waferseg import``, ``lots``, ``wafers``, ``stack``, ``users`` ... (the store's commands)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from waferseg_core.errors import InvalidInputError

# exports.KINDS, named here so that parsing the command line imports no model or store code.
EXPORT_KINDS = ["coco", "csv", "g85", "e142", "stdf", "klarf", "sinf", "tsk", "png"]


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def open_store(args: argparse.Namespace) -> Any:
    """The store named by ``--store`` (or the default), migrated."""
    from waferseg_core.store.service import Store

    return Store(args.store)


def login(store: Any, args: argparse.Namespace) -> Any:
    """The acting user.

    ``--user`` with ``WAFERSEG_PASSWORD`` (or a prompt on a terminal), or the local admin of a
    SQLite store.
    """
    if args.user is None:
        return store.login()
    password = os.environ.get("WAFERSEG_PASSWORD")
    if password is None and not store.is_sqlite and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
    return store.login(args.user, password)


def _require_limit(limit: int | None) -> None:
    """Refuse a ``--limit`` under 1 (None: no limit)."""
    if limit is not None and limit < 1:
        raise InvalidInputError(f"--limit must be 1 or more, found {limit}")


def add_commands(sub: Any) -> None:
    """Register the store commands."""
    p = sub.add_parser(
        "import", help="import wafer files, folders or a COCO file into the store (all or nothing)"
    )
    p.add_argument("paths", nargs="+", metavar="FILE|DIR")
    p.add_argument("--lot", help="put every wafer into this lot (default: the files' lot ids)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("lots", help="the stored lots with their wafer counts (JSON lines)")
    p.set_defaults(func=cmd_lots)

    p = sub.add_parser(
        "patterns",
        help="wafers per pattern in each lot, by the model and by the annotations (JSON lines)",
    )
    p.add_argument("--lot", action="append", help="a stored lot; repeat for several (default: all)")
    p.add_argument("--model", help="ONNX model (default: the active one, else the shipped one)")
    p.set_defaults(func=cmd_patterns)

    p = sub.add_parser(
        "wafers", help="stored wafers with their ids, status and cached prediction (JSON lines)"
    )
    p.add_argument("--lot", help="one lot's wafers (default: every lot's)")
    p.add_argument("--status", choices=["new", "annotated", "reviewed"])
    p.add_argument("--pattern", help="only wafers the model called this (Center, ..., none)")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--worst-first", action="store_true", help="highest fail fraction first")
    order.add_argument(
        "--least-sure-first",
        action="store_true",
        help="lowest probability of the model's call first (wafers not predicted yet last)",
    )
    p.add_argument("--limit", type=int, help="at most this many")
    p.add_argument("--model", help="whose cached predictions (default: the active, else shipped)")
    p.set_defaults(func=cmd_wafers)

    p = sub.add_parser("jobs", help="the store's job queue: list, show or cancel jobs")
    js = p.add_subparsers(dest="jobs_cmd", required=True)
    jl = js.add_parser("list", help="the newest jobs, newest first (JSON lines)")
    jl.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jl.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    jl.set_defaults(func=cmd_jobs_list)
    jsh = js.add_parser("show", help="one job: config, status, its rows (epochs or lots), error")
    jsh.add_argument("job_id", type=int, metavar="JOB_ID")
    jsh.set_defaults(func=cmd_jobs_show)
    jc = js.add_parser("cancel", help="cancel a queued job, or ask a running one to stop")
    jc.add_argument("job_id", type=int, metavar="JOB_ID")
    jc.set_defaults(func=cmd_jobs_cancel)

    p = sub.add_parser("users", help="add or list users")
    us = p.add_subparsers(dest="users_cmd", required=True)
    a = us.add_parser("add")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["admin", "engineer", "annotator", "viewer"])
    a.set_defaults(func=cmd_users_add)
    ls = us.add_parser("list")
    ls.set_defaults(func=cmd_users_list)

    p = sub.add_parser("review", help="agreement between annotators")
    rs = p.add_subparsers(dest="review_cmd", required=True)
    ag = rs.add_parser(
        "agreement", help="per wafer and per class agreement of a lot, worst first (JSON lines)"
    )
    ag.add_argument("--lot", required=True)
    ag.set_defaults(func=cmd_review_agreement)
    ad = rs.add_parser(
        "adjudicate",
        help="save the annotators' majority vote as the consensus of each disputed wafer",
    )
    ad.add_argument("--lot", required=True)
    ad.add_argument("--redo", action="store_true", help="also wafers adjudicated before")
    ad.set_defaults(func=cmd_review_adjudicate)

    p = sub.add_parser("al", help="active learning: which wafers to annotate next")
    als = p.add_subparsers(dest="al_cmd", required=True)
    q = als.add_parser("query", help="queue the most useful unannotated wafers (JSON lines)")
    where = q.add_mutually_exclusive_group(required=True)
    where.add_argument("--lot")
    where.add_argument("--all", action="store_true", help="every lot's unannotated wafers")
    q.add_argument("--strategy", required=True, choices=list(_strategies()))
    q.add_argument("--budget", type=int, required=True)
    q.add_argument("--model", help="ONNX model (default: the active one, else the shipped one)")
    q.add_argument("--checkpoint", help="torch checkpoint of the model, for bald")
    q.add_argument("--diversity", type=float, default=0.4, help="hybrid's share of diversity")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_al_query)
    ls_ = als.add_parser("list", help="the queued wafers in order (JSON lines)")
    ls_.add_argument(
        "--model", help="whose cached pattern is shown (default: the active one, else shipped)"
    )
    ls_.set_defaults(func=cmd_al_list)

    p = sub.add_parser("similar", help="most similar stored wafers by model embedding")
    p.add_argument("wafer_id", type=int, metavar="WAFER_ID")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--other-lots", action="store_true", help="leave the wafer's own lot out")
    p.add_argument("--model", help="ONNX model (default: the active one, else the shipped one)")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser(
        "export", help="export a lot: COCO, CSV, inked G85/E142/STDF/SINF/TSK or PNG masks"
    )
    p.add_argument("kind", choices=EXPORT_KINDS)
    p.add_argument("--lot", required=True)
    p.add_argument(
        "--out",
        required=True,
        help="a file (csv, g85, e142, stdf, klarf) or a new folder (the rest)",
    )
    p.add_argument("--model", help="ONNX model (default: the active one, else the shipped one)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "stack",
        help="a lot's stacked map: per die position, the share of its wafers failing there "
        "(or, with --class, whose model mask holds that class); summary as JSON",
    )
    p.add_argument(
        "--lot", required=True, action="append", help="a stored lot; repeat to stack several"
    )
    p.add_argument("--class", dest="class_name", help="a class name, e.g. Edge-Loc (model)")
    p.add_argument("--csv", help="write row,col,wafers,share per die position here")
    p.add_argument("--model", help="ONNX model (default: the active one, else the shipped one)")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("db", help="store maintenance")
    ds = p.add_subparsers(dest="db_cmd", required=True)
    up = ds.add_parser("upgrade", help="bring the store's schema up to date (SQLite: backup first)")
    up.set_defaults(func=cmd_db_upgrade)


def cmd_import(args: argparse.Namespace) -> int:
    """Read everything first; write only when every file read, in one transaction."""
    from waferseg_core import formats

    paths = [Path(p) for p in args.paths]
    coco = [p for p in paths if p.is_file() and p.suffix.lower() == ".json"]
    others = [p for p in paths if p not in coco]
    lots: dict[str, list[Any]] = {}
    annotations: list[tuple[str, Any, list[Any]]] = []
    if others:
        res = formats.read_many(others)
        if res.errors:
            raise res.errors[0]
        for lot, maps in res.lots.items():
            lots.setdefault(args.lot or lot, []).extend(maps)
    for c in coco:
        from waferseg_core.coco import load

        for cw in load(c):
            lot = args.lot or cw.wafer.lot or c.parent.name
            lots.setdefault(lot, []).append(cw.wafer)
            annotations.append((lot, cw.wafer, cw.annotations))
    if not lots:
        raise InvalidInputError("expected wafer files, folders or COCO files, found no wafers")
    store = open_store(args)
    user = login(store, args)

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"importing {done}/{total}\n")
        sys.stderr.flush()

    from waferseg_core.geometry import to_geojson
    from waferseg_core.store.service import NewAnnotation

    per_lot: dict[str, list[list[Any]]] = {lot: [[] for _ in maps] for lot, maps in lots.items()}
    position = {id(w): i for maps in lots.values() for i, w in enumerate(maps)}
    for lot, w, anns in annotations:
        per_lot[lot][position[id(w)]] = [
            NewAnnotation(a.class_id, to_geojson(a.geometry), a.source, a.model_version)
            for a in anns
        ]
    saved = sum(len(a) for v in per_lot.values() for a in v)
    ids = store.import_lots(user, lots, progress, per_lot if saved else None)
    _emit(
        {
            "lots": {k: {"wafers": len(v), "wafer_ids": v} for k, v in ids.items()},
            "wafers": sum(len(v) for v in ids.values()),
            "annotations": saved,
            "user": user.name,
        }
    )
    return 0


def cmd_review_agreement(args: argparse.Namespace) -> int:
    """One JSON line per wafer with two or more annotators, lowest kappa first."""
    from waferseg_core.store.review_ops import lot_agreement

    store = open_store(args)
    user = login(store, args)
    # A reviewer's run also keeps the figures in the store (agreement history per wafer).
    lines = lot_agreement(store, user, args.lot, save=user.can("review"))
    for line in lines:
        _emit(line)
    if not lines:
        _emit({"lot": args.lot, "wafers_with_several_annotators": 0})
    return 0


def cmd_review_adjudicate(args: argparse.Namespace) -> int:
    """Majority-vote consensus for the lot's wafers with several annotators; JSON per wafer."""
    from waferseg_core.review import majority_vote
    from waferseg_core.store.review_ops import wafer_masks

    store = open_store(args)
    user = login(store, args)
    rows = store.list_wafers(user, lot=args.lot)
    if not rows:
        raise InvalidInputError(f"lot {args.lot!r} holds no wafers (or does not exist)")
    done = 0
    for r in rows:
        wm = wafer_masks(store, user, r["id"])
        if len(wm.by_annotator) < 2 or (wm.consensus is not None and not args.redo):
            continue
        mask = majority_vote(list(wm.by_annotator.values()), wm.wafer.grid)
        ids = store.save_consensus(user, r["id"], mask, method="majority vote")
        _emit({"lot": args.lot, "wafer": r["wafer"], "wafer_id": r["id"], "annotations": ids})
        done += 1
    if not done:
        _emit({"lot": args.lot, "adjudicated": 0})
    return 0


def _strategies() -> tuple[str, ...]:
    from waferseg_core.ml.active import STRATEGIES

    return STRATEGIES


def _predictor(store: Any, user: Any, model: str | None) -> Any:
    from waferseg_core.inference import Predictor
    from waferseg_core.store.predict import resolve_model

    return Predictor(resolve_model(store, user, model))


def cmd_al_query(args: argparse.Namespace) -> int:
    """Queue wafers to annotate; one JSON line per queued wafer, best first."""
    from waferseg_core.store.al_ops import query

    store = open_store(args)
    user = login(store, args)
    picks = query(
        store,
        user,
        _predictor(store, user, args.model),
        args.strategy,
        args.budget,
        lot=None if args.all else args.lot,
        checkpoint=args.checkpoint,
        diversity_weight=args.diversity,
        seed=args.seed,
    )
    for row in picks:
        _emit(row)
    return 0


def cmd_al_list(args: argparse.Namespace) -> int:
    """The active-learning queue in order, each wafer with the model's cached pattern."""
    from waferseg_core.inference import file_hash, model_file
    from waferseg_core.store.predict import resolve_model

    store = open_store(args)
    user = login(store, args)
    model = model_file(resolve_model(store, user, args.model))
    for row in store.al_queue(user, file_hash(model)):
        _emit(row)
    return 0


def cmd_lots(args: argparse.Namespace) -> int:
    """One JSON line per stored lot: its name, wafers, and wafers per status."""
    store = open_store(args)
    user = login(store, args)
    for lot in store.lots(user):
        _emit({"lot": lot.pop("name"), **{k: v for k, v in lot.items() if k != "id"}})
    return 0


def cmd_patterns(args: argparse.Namespace) -> int:
    """Per lot: wafers, and wafers per pattern by the model (cached) and by the final masks.

    The dashboard's figures, for reports and scripts; patterns no wafer has are left out.
    """
    from waferseg_core.inference import Predictor
    from waferseg_core.store.dashboard_data import dashboard
    from waferseg_core.store.predict import resolve_model

    store = open_store(args)
    user = login(store, args)
    if args.lot:
        store.require_lots(user, args.lot)
    predictor = Predictor(resolve_model(store, user, args.model))
    data = dashboard(store, user, predictor, list(dict.fromkeys(args.lot)) if args.lot else None)
    for row in data.as_dict()["lots"]:
        _emit(row)
    return 0


def cmd_wafers(args: argparse.Namespace) -> int:
    """One JSON line per stored wafer; its cached call and scores are null until it is predicted."""
    from waferseg_core.classes import WAFER_LABELS
    from waferseg_core.inference import file_hash, model_file
    from waferseg_core.store.predict import resolve_model

    _require_limit(args.limit)
    if args.pattern is not None and args.pattern not in WAFER_LABELS:
        raise InvalidInputError(
            f"--pattern: expected one of {', '.join(WAFER_LABELS)}, found {args.pattern!r}"
        )
    store = open_store(args)
    user = login(store, args)
    if args.lot is not None:
        store.require_lots(user, [args.lot])
    model = model_file(resolve_model(store, user, args.model))
    for row in store.list_wafers(
        user,
        lot=args.lot,
        status=args.status,
        pattern=args.pattern,
        model_hash=file_hash(model),
        worst_first=args.worst_first,
        least_sure_first=args.least_sure_first,
        limit=args.limit,
    ):
        _emit(row)
    return 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """One JSON line per job, newest first: id, kind, status, who, when, progress, model."""
    _require_limit(args.limit)
    store = open_store(args)
    user = login(store, args)
    for job in store.jobs(user, limit=args.limit, status=args.status):
        _emit(job)
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    """One job as a JSON object: its config, status, rows (``epochs``) and error text."""
    store = open_store(args)
    user = login(store, args)
    _emit(store.job(user, args.job_id))
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    """Cancel a queued job at once, or ask a running job's worker to stop at its next check."""
    store = open_store(args)
    user = login(store, args)
    before = store.job(user, args.job_id)["status"]
    after = store.request_cancel(user, args.job_id)  # refuses a job that has ended
    _emit({"job": args.job_id, "was": before, "status": after})
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    """The most similar wafers, best first."""
    from waferseg_core.store.al_ops import similar

    store = open_store(args)
    user = login(store, args)
    pred = _predictor(store, user, args.model)
    for row in similar(store, user, pred, args.wafer_id, args.top, other_lots=args.other_lots):
        _emit(row)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a lot; progress on stderr, the summary as JSON."""
    from waferseg_core.exports import export_lot

    store = open_store(args)
    user = login(store, args)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rexport {done}/{total}")
            sys.stderr.flush()

    _emit(
        export_lot(store, user, args.lot, args.kind, args.out, model=args.model, progress=progress)
    )
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    """A lot's stacked map: a JSON summary, and the shares per die position as CSV."""
    import numpy as np

    from waferseg_core.classes import PATTERN_CLASSES
    from waferseg_core.inference import Predictor
    from waferseg_core.store.dashboard_data import lot_stack
    from waferseg_core.store.predict import resolve_model

    names = {c.name: c.id for c in PATTERN_CLASSES}
    if args.class_name is not None and args.class_name not in names:
        raise InvalidInputError(
            f"--class: expected one of {', '.join(names)}, found {args.class_name!r}"
        )
    out = Path(args.csv) if args.csv else None
    if out is not None and not out.parent.is_dir():
        raise InvalidInputError(f"--csv: expected a file in an existing folder, found {out}")
    store = open_store(args)
    user = login(store, args)
    predictor = None
    if args.class_name is not None:
        predictor = Predictor(resolve_model(store, user, args.model))
    st = lot_stack(store, user, args.lot, predictor)
    share = st.share(names[args.class_name] if args.class_name else None)
    on = st.present > 0
    peak = float(share[on].max())
    if out is not None:
        _write_stack_csv(out, st.present, share)
    _emit(
        {
            "lots": args.lot,
            "show": args.class_name or "fails",
            "rows": st.shape[0],
            "cols": st.shape[1],
            "wafers": st.wafers,
            "left_out": st.left_out,
            "mean_share": round(float(share[on].mean()), 4),
            "peak_share": round(peak, 4),
            # Where it peaks (canonical row, col), at most ten positions.
            "peak_dies": np.argwhere(on & (share == peak))[:10].tolist(),
        }
    )
    return 0


def _write_stack_csv(path: Path, present: Any, share: Any) -> None:
    """The shares per die position, written beside ``path`` and moved in place."""
    import csv

    import numpy as np

    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "col", "wafers", "share"])
            for (r, c), n in np.ndenumerate(present):
                if n:
                    w.writerow([r, c, int(n), round(float(share[r, c]), 6)])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_users_add(args: argparse.Namespace) -> int:
    """Add a user (password from WAFERSEG_PASSWORD when set)."""
    store = open_store(args)
    empty = not _has_users(store)
    actor = None if empty else login(store, args)
    u = store.add_user(actor, args.name, args.role, os.environ.get("WAFERSEG_NEW_PASSWORD"))
    _emit({"id": u.id, "name": u.name, "role": u.role})
    return 0


def _has_users(store: Any) -> bool:
    import sqlalchemy as sa

    from waferseg_core.store.models import User

    with store.sessions() as s:
        return bool(s.scalar(sa.select(sa.func.count()).select_from(User)))


def cmd_users_list(args: argparse.Namespace) -> int:
    """One JSON line per user."""
    store = open_store(args)
    for u in store.users(login(store, args)):
        _emit({"id": u.id, "name": u.name, "role": u.role})
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Open (and so migrate) the store, then report what ran."""
    store = open_store(args)
    from waferseg_core.store.migrate import current

    _emit(
        {
            "store": store.engine.url.render_as_string(hide_password=True),
            "revision": current(store.engine),
            **(store.migration or {}),
        }
    )
    return 0
