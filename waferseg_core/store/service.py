"""The service layer: everything the app and the CLI do with the store goes through here.

Every method that reads or writes takes the acting :class:`UserRef` and checks its role first
(admin: everything; engineer: import, inference, training, promoting models, review; annotator:
annotate, inference, review; viewer: read only). Writes are one transaction each: all or nothing.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from waferseg_core.classes import CLASSES
from waferseg_core.errors import ConflictError, InvalidInputError, PermissionDeniedError
from waferseg_core.geometry import from_geojson
from waferseg_core.store import models as m
from waferseg_core.store.db import create_engine, default_url, session_factory
from waferseg_core.store.migrate import upgrade
from waferseg_core.wafer import BinDef, CoordFrame, Defect, WaferMap

ROLES = ("admin", "engineer", "annotator", "viewer")
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {"users", "settings", "import", "infer", "train", "promote", "annotate", "review", "read"}
    ),
    "engineer": frozenset({"import", "infer", "train", "promote", "review", "read"}),
    "annotator": frozenset({"annotate", "infer", "review", "read"}),
    "viewer": frozenset({"read"}),
}
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ENDED_JOB_STATES = JOB_STATES[2:]
WAFER_STATUSES = ("new", "annotated", "reviewed")


@dataclass(frozen=True)
class UserRef:
    """The acting user."""

    id: int
    name: str
    role: str

    def can(self, permission: str) -> bool:
        """Whether the role allows ``permission``."""
        return permission in PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class NewAnnotation:
    """An annotation to create (geometry as GeoJSON in die coordinates)."""

    class_id: int
    geometry: dict[str, Any]
    source: str = "manual"
    model_version: str = ""


def hash_password(password: str, *, salt: bytes | None = None, n: int = 2**14) -> str:
    """``scrypt$n$r$p$salt$hash`` (salted, hashed with hashlib.scrypt)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}$8$1${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against :func:`hash_password`'s output."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def _pack_grid(grid: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(grid, np.uint8).tobytes(), 6)


def _json_float(v: float) -> float | None:
    # JSON has no NaN (PostgreSQL refuses the row): a KLARF "NA" position is stored as null.
    return None if math.isnan(v) else v


def _defect_row(d: Defect) -> list[float | int | None]:
    x, y, size = (_json_float(v) for v in (d.x_um, d.y_um, d.size_um))
    return [d.row, d.col, x, y, size, d.class_code]


def _from_json(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _wafer_meta(w: WaferMap) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "slot": w.slot,
        "product": w.product,
        "step": w.step,
        "die_pitch_um": list(w.die_pitch_um) if w.die_pitch_um else None,
        "diameter_mm": w.diameter_mm,
        "frame": {
            "notch": w.frame.notch,
            "x_origin": w.frame.x_origin,
            "y_origin": w.frame.y_origin,
            "x_step": w.frame.x_step,
            "y_step": w.frame.y_step,
        },
        "bin_table": [[b.code, b.passed, b.description] for b in w.bin_table.values()],
        "defects": [_defect_row(d) for d in w.defects],
        "label": str(w.extra.get("label", "")),
    }
    lookup = w.extra.get("class_lookup")
    if isinstance(lookup, dict) and lookup:  # a KLARF file's defect class names
        meta["class_lookup"] = {str(k): str(v) for k, v in lookup.items()}
    if w.bins is not None:
        meta["bins"] = base64.b64encode(zlib.compress(w.bins.astype(np.int32).tobytes())).decode()
    return meta


def _to_wafer_map(row: m.Wafer, lot: str) -> WaferMap:
    grid = np.frombuffer(zlib.decompress(row.grid), np.uint8).reshape(row.rows, row.cols).copy()
    meta = row.meta or {}
    bins = None
    if meta.get("bins"):
        bins = np.frombuffer(zlib.decompress(base64.b64decode(meta["bins"])), np.int32).reshape(
            row.rows, row.cols
        )
    pitch = meta.get("die_pitch_um")
    extra: dict[str, Any] = {"label": meta.get("label", ""), "store_id": row.id}
    if meta.get("class_lookup"):  # JSON keys are text; the codes are numbers
        extra["class_lookup"] = {int(k): v for k, v in meta["class_lookup"].items()}
    return WaferMap(
        grid=grid,
        bins=bins,
        bin_table={
            int(c): BinDef(int(c), bool(p), str(d)) for c, p, d in meta.get("bin_table", [])
        },
        lot=lot,
        wafer_id=row.wafer_key,
        slot=meta.get("slot"),
        source_file=row.source_file,
        source_format=row.source_format,
        product=meta.get("product", ""),
        step=meta.get("step", ""),
        die_pitch_um=(float(pitch[0]), float(pitch[1])) if pitch else None,
        diameter_mm=meta.get("diameter_mm"),
        frame=CoordFrame(**meta["frame"]) if meta.get("frame") else CoordFrame(),
        defects=tuple(
            Defect(int(a), int(b), _from_json(c), _from_json(d), _from_json(e), int(f))
            for a, b, c, d, e, f in meta.get("defects", [])
        ),
        extra=extra,
    )


class Store:
    """A connected, migrated store.

    Args:
        url: Any SQLAlchemy URL (default: ``WAFERSEG_STORE`` or the user's SQLite file).
        migrate: Upgrade the schema on open (with a SQLite backup first).
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = url or default_url()
        self.engine = create_engine(self.url)
        self.sessions = session_factory(self.engine)
        self.writes = session_factory(self.engine, write=True)
        self.migration = upgrade(self.engine) if migrate else None

    @property
    def is_sqlite(self) -> bool:
        """True for a local SQLite file."""
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # ---- users ----------------------------------------------------------------------------------

    def login(self, name: str | None = None, password: str | None = None) -> UserRef:
        """Log a user in; on a SQLite store with no name, the local user as admin.

        Raises:
            PermissionDeniedError: Unknown user or wrong password (the same message for both).
        """
        with self.sessions() as s:
            if name is None and self.is_sqlite:
                local = getpass.getuser() or "local"
                u = s.scalar(sa.select(m.User).where(m.User.name == local))
                if u is None:
                    with self.writes() as w, w.begin():
                        u = m.User(name=local, role="admin")
                        w.add(u)
                        w.flush()
                return UserRef(u.id, u.name, u.role)
            if name is None:
                raise PermissionDeniedError(
                    "a shared store needs --user NAME (and WAFERSEG_PASSWORD)"
                )
            u = s.scalar(sa.select(m.User).where(m.User.name == name))
            ok = u is not None and (
                (u.password_hash is None and self.is_sqlite)
                or (
                    u.password_hash is not None
                    and password is not None
                    and check_password(password, u.password_hash)
                )
            )
            if not ok or u is None:
                raise PermissionDeniedError(
                    f"login failed for {name!r}: unknown user or wrong password"
                )
            return UserRef(u.id, u.name, u.role)

    def add_user(
        self, actor: UserRef | None, name: str, role: str, password: str | None = None
    ) -> UserRef:
        """Create a user (admins only; the first user of an empty store must be an admin)."""
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, found {role!r}")
        if not name.strip():
            raise InvalidInputError("user name must not be empty")
        with self.writes() as s, s.begin():
            empty = s.scalar(sa.select(sa.func.count()).select_from(m.User)) == 0
            if empty:
                if role != "admin":
                    raise InvalidInputError("the first user of a store must be an admin")
            else:
                _require(actor, "users")
            if s.scalar(sa.select(m.User.id).where(m.User.name == name)) is not None:
                raise InvalidInputError(f"user {name!r} already exists")
            u = m.User(
                name=name, role=role, password_hash=hash_password(password) if password else None
            )
            s.add(u)
            s.flush()
            return UserRef(u.id, u.name, u.role)

    def users(self, actor: UserRef) -> list[UserRef]:
        """Every user."""
        _require(actor, "read")
        with self.sessions() as s:
            return [
                UserRef(u.id, u.name, u.role)
                for u in s.scalars(sa.select(m.User).order_by(m.User.name))
            ]

    # ---- lots and wafers ------------------------------------------------------------------------

    def import_lot(
        self,
        actor: UserRef,
        lot: str,
        wafers: Sequence[WaferMap],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """Add wafers to a lot (created if new) in one transaction: all of them or none."""
        return self.import_lots(actor, {lot: list(wafers)}, progress)[lot]

    def import_lots(
        self,
        actor: UserRef,
        lots: dict[str, list[WaferMap]],
        progress: Callable[[int, int], None] | None = None,
        annotations: dict[str, list[list[NewAnnotation]]] | None = None,
    ) -> dict[str, list[int]]:
        """Add wafers (and their annotations) to several lots in one transaction: all or none.

        ``annotations[lot][i]`` are the annotations of ``lots[lot][i]``, saved as ``actor``'s.

        Raises:
            InvalidInputError: Empty lot name, or a wafer id already in its lot or repeated.
        """
        _require(actor, "import")
        total = sum(len(v) for v in lots.values())
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0], total)

        with self.writes() as s, s.begin():
            ids = {
                lot: self._import_one(s, actor, lot, wafers, step) for lot, wafers in lots.items()
            }
            for lot, per_wafer in (annotations or {}).items():
                for wafer_id, anns in zip(ids[lot], per_wafer, strict=True):
                    for a in anns:
                        self._create_annotation(s, actor, wafer_id, a)
            return ids

    def _import_one(
        self,
        s: Session,
        actor: UserRef,
        lot: str,
        wafers: Sequence[WaferMap],
        step: Callable[[int], None],
    ) -> list[int]:
        if not lot.strip():
            raise InvalidInputError("lot name must not be empty")
        keys = [w.wafer_id or str(i + 1) for i, w in enumerate(wafers)]
        dupes = {k for k in keys if keys.count(k) > 1} if len(set(keys)) != len(keys) else set()
        if dupes:
            raise InvalidInputError(
                f"wafer ids must be unique within lot {lot!r}; repeated: {sorted(dupes)[:5]}"
            )
        row = s.scalar(sa.select(m.Lot).where(m.Lot.name == lot))
        if row is None:
            row = m.Lot(name=lot, created_by=actor.id)
            s.add(row)
            s.flush()
        taken = set(s.scalars(sa.select(m.Wafer.wafer_key).where(m.Wafer.lot_id == row.id)))
        clash = sorted(taken & set(keys))
        if clash:
            raise InvalidInputError(
                f"lot {lot!r} already holds wafers {clash[:5]}; nothing was imported"
            )
        ids = []
        for i, (w, key) in enumerate(zip(wafers, keys, strict=True)):
            rec = m.Wafer(
                lot_id=row.id,
                wafer_key=key,
                rows=w.rows,
                cols=w.cols,
                grid=_pack_grid(w.grid),
                content_hash=w.content_hash,
                dies=w.dies,
                fail_dies=w.fail_dies,
                source_file=w.source_file[:1000],
                source_format=w.source_format,
                meta=_wafer_meta(w),
            )
            s.add(rec)
            if i % 200 == 199 or i == len(wafers) - 1:
                s.flush()
                step(i % 200 + 1)
            ids.append(rec)
        s.flush()
        return [r.id for r in ids]

    def lots(self, actor: UserRef) -> list[dict[str, Any]]:
        """Lots by name with their wafer counts: in all, and per status (``WAFER_STATUSES``)."""
        _require(actor, "read")
        with self.sessions() as s:
            per_status = [
                sa.func.coalesce(sa.func.sum(sa.case((m.Wafer.status == st, 1), else_=0)), 0)
                for st in WAFER_STATUSES
            ]
            q = (
                sa.select(m.Lot.id, m.Lot.name, sa.func.count(m.Wafer.id), *per_status)
                .outerjoin(m.Wafer, m.Wafer.lot_id == m.Lot.id)
                .group_by(m.Lot.id, m.Lot.name)
                .order_by(m.Lot.name)
            )
            return [
                {
                    "id": i,
                    "name": n,
                    "wafers": c,
                    **dict(zip(WAFER_STATUSES, map(int, st), strict=True)),
                }
                for i, n, c, *st in s.execute(q)
            ]

    def require_lots(self, actor: UserRef, names: Sequence[str]) -> None:
        """Refuse any name of a lot the store does not hold (all are checked before any work).

        Raises:
            InvalidInputError: The first name with no stored lot.
        """
        stored = {x["name"] for x in self.lots(actor)}
        for name in names:
            if name not in stored:
                raise InvalidInputError(
                    f"expected a stored lot, found no lot {name!r} (waferseg lots)"
                )

    def wafer(self, actor: UserRef, wafer_id: int) -> WaferMap:
        """The wafer map of a stored wafer."""
        _require(actor, "read")
        with self.sessions() as s:
            row = s.get(m.Wafer, wafer_id)
            if row is None:
                raise InvalidInputError(f"no wafer with id {wafer_id}")
            lot = s.scalar(sa.select(m.Lot.name).where(m.Lot.id == row.lot_id)) or ""
            return _to_wafer_map(row, lot)

    def list_wafers(
        self,
        actor: UserRef,
        *,
        lot: str | None = None,
        pattern: str | None = None,
        status: str | None = None,
        min_confidence: float | None = None,
        max_confidence: float | None = None,
        min_uncertainty: float | None = None,
        model_hash: str | None = None,
        worst_first: bool = False,
        least_sure_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Wafers with their cached prediction under ``model_hash`` (or the active model).

        In id order, or ``worst_first`` (highest fail fraction first) or ``least_sure_first``
        (lowest probability of the cached call first; wafers not predicted yet last).
        """
        _require(actor, "read")
        if worst_first and least_sure_first:
            raise InvalidInputError(
                "expected one order, found both worst_first and least_sure_first"
            )
        with self.sessions() as s:
            mh = model_hash or s.scalar(
                sa.select(m.ModelVersion.file_hash).where(m.ModelVersion.active.is_(True))
            )
            p = sa.orm.aliased(m.Prediction)
            q = (
                sa.select(
                    m.Wafer.id,
                    m.Lot.name,
                    m.Wafer.wafer_key,
                    m.Wafer.rows,
                    m.Wafer.cols,
                    m.Wafer.dies,
                    m.Wafer.fail_dies,
                    m.Wafer.status,
                    p.pattern,
                    p.pattern_probability,
                    p.confidence,
                    p.uncertainty,
                )
                .join(m.Lot, m.Lot.id == m.Wafer.lot_id)
                .outerjoin(
                    p, sa.and_(p.wafer_hash == m.Wafer.content_hash, p.model_hash == (mh or ""))
                )
            )
            if lot is not None:
                q = q.where(m.Lot.name == lot)
            if pattern is not None:
                q = q.where(p.pattern == pattern)
            if status is not None:
                q = q.where(m.Wafer.status == status)
            if min_confidence is not None:
                q = q.where(p.confidence >= min_confidence)
            if max_confidence is not None:
                q = q.where(p.confidence <= max_confidence)
            if min_uncertainty is not None:
                q = q.where(p.uncertainty >= min_uncertainty)
            order: tuple[Any, ...] = (m.Wafer.id,)
            if worst_first:
                # The highest fail fraction: an engineer's first look at a lot.
                share = m.Wafer.fail_dies * 1.0 / sa.func.nullif(m.Wafer.dies, 0)
                order = (sa.desc(share), m.Wafer.id)
            elif least_sure_first:
                # The doubtful calls for a reviewer; a wafer with no call yet has none to doubt.
                order = (p.pattern_probability.is_(None), p.pattern_probability, m.Wafer.id)
            q = q.order_by(*order).offset(offset)
            if limit:
                q = q.limit(limit)
            keys = (
                "id",
                "lot",
                "wafer",
                "rows",
                "cols",
                "dies",
                "fail_dies",
                "status",
                "pattern",
                "pattern_probability",
                "confidence",
                "uncertainty",
            )
            return [dict(zip(keys, r, strict=True)) for r in s.execute(q)]

    def set_status(self, actor: UserRef, wafer_id: int, status: str) -> None:
        """Mark a wafer new, annotated or reviewed."""
        _require(actor, "review" if status == "reviewed" else "annotate")
        if status not in WAFER_STATUSES:
            raise InvalidInputError(f"status must be new, annotated or reviewed, found {status!r}")
        with self.writes() as s, s.begin():
            s.execute(sa.update(m.Wafer).where(m.Wafer.id == wafer_id).values(status=status))

    # ---- annotations ----------------------------------------------------------------------------

    def save_annotation(
        self,
        actor: UserRef,
        wafer_id: int,
        class_id: int,
        geometry: dict[str, Any],
        *,
        annotation_id: int | None = None,
        base_version: int | None = None,
        source: str = "manual",
        model_version: str = "",
    ) -> tuple[int, int]:
        """Create an annotation, or update one from the version the editor started from.

        Returns:
            (annotation id, new version).

        Raises:
            ConflictError: Someone saved a newer version first; carries it and its author.
        """
        _require(actor, "annotate")
        if not 1 <= class_id <= 8:
            raise InvalidInputError(f"class id must be 1-8, found {class_id}")
        if source not in ("manual", "model", "consensus"):
            raise InvalidInputError(f"source must be manual, model or consensus, found {source!r}")
        from_geojson(geometry)  # validates, raises GeometryError with the place
        with self.writes() as s, s.begin():
            if s.get(m.Wafer, wafer_id) is None:
                raise InvalidInputError(f"no wafer with id {wafer_id}")
            after = {"class_id": class_id, "geometry": geometry, "source": source}
            if annotation_id is None:
                new = NewAnnotation(class_id, geometry, source, model_version)
                return self._create_annotation(s, actor, wafer_id, new), 1
            if base_version is None:
                raise InvalidInputError(
                    "updating an annotation needs the version the edit started from"
                )
            old = s.get(m.Annotation, annotation_id)
            if old is None or old.wafer_id != wafer_id:
                raise InvalidInputError(f"no annotation {annotation_id} on wafer {wafer_id}")
            values = {
                "class_id": class_id,
                "geometry": geometry,
                "source": source,
                "model_version": model_version,
            }
            self._versioned_change(s, actor, old, base_version, "update", after, values)
            return annotation_id, base_version + 1

    def _create_annotation(
        self, s: Session, actor: UserRef, wafer_id: int, new: NewAnnotation
    ) -> int:
        # Callers check the permission (annotate, or review for a consensus).
        a = m.Annotation(
            wafer_id=wafer_id,
            class_id=new.class_id,
            geometry=new.geometry,
            author_id=actor.id,
            source=new.source,
            model_version=new.model_version,
            version=1,
        )
        s.add(a)
        s.flush()
        after = {"class_id": new.class_id, "geometry": new.geometry, "source": new.source}
        s.add(
            m.AnnotationRevision(
                annotation_id=a.id,
                wafer_id=wafer_id,
                user_id=actor.id,
                version=1,
                action="create",
                before=None,
                after=after,
            )
        )
        s.execute(
            sa.update(m.Wafer)
            .where(m.Wafer.id == wafer_id, m.Wafer.status == "new")
            .values(status="annotated")
        )
        return a.id

    def replace_annotations(
        self,
        actor: UserRef,
        wafer_id: int,
        mask: Any,
        *,
        source: str = "model",
        model_version: str = "",
    ) -> list[int]:
        """Replace the actor's annotations of a wafer by one region per class of ``mask``.

        One transaction; the old ones are soft-deleted with revisions, so nothing is lost. Other
        annotators' annotations and the consensus stay: each annotator owns their own mask.
        """
        _require(actor, "annotate")
        with self.writes() as s, s.begin():
            mine = sa.and_(m.Annotation.author_id == actor.id, m.Annotation.source != "consensus")
            return self._replace_regions(s, actor, wafer_id, mask, mine, source, model_version)

    def _replace_regions(
        self,
        s: Session,
        actor: UserRef,
        wafer_id: int,
        mask: Any,
        which: Any,
        source: str,
        model_version: str,
    ) -> list[int]:
        """Swap the live annotations matching ``which`` for one region per class of ``mask``.

        Runs inside the caller's transaction; the old ones are soft-deleted with revisions.
        Returns the new annotations' ids.
        """
        from waferseg_core.geometry import geometry_from_mask, to_geojson

        for old in s.scalars(
            sa.select(m.Annotation).where(
                m.Annotation.wafer_id == wafer_id, m.Annotation.deleted.is_(False), which
            )
        ).all():
            self._versioned_change(s, actor, old, old.version, "delete", None, {"deleted": True})
        ids = []
        for c in sorted(int(v) for v in np.unique(mask) if 1 <= v <= 8):
            new = NewAnnotation(c, to_geojson(geometry_from_mask(mask == c)), source, model_version)
            ids.append(self._create_annotation(s, actor, wafer_id, new))
        return ids

    def save_consensus(
        self, actor: UserRef, wafer_id: int, mask: Any, *, method: str, note: str = ""
    ) -> list[int]:
        """Save an adjudicated mask as the wafer's consensus annotations, in one transaction.

        Earlier consensus annotations are soft-deleted (with revisions); the annotators' own
        annotations stay. Records the reviewer's decision and marks the wafer reviewed.
        """
        _require(actor, "review")
        with self.writes() as s, s.begin():
            if s.get(m.Wafer, wafer_id) is None:
                raise InvalidInputError(f"no wafer with id {wafer_id}")
            consensus = m.Annotation.source == "consensus"
            ids = self._replace_regions(s, actor, wafer_id, mask, consensus, "consensus", "")
            s.add(
                m.ReviewDecision(
                    wafer_id=wafer_id,
                    reviewer_id=actor.id,
                    decision="consensus",
                    note=f"{method}: {note}" if note else method,
                )
            )
            s.execute(sa.update(m.Wafer).where(m.Wafer.id == wafer_id).values(status="reviewed"))
            return ids

    def reviews(self, actor: UserRef, wafer_id: int) -> list[dict[str, Any]]:
        """The reviewers' decisions on a wafer, newest first."""
        _require(actor, "read")
        with self.sessions() as s:
            q = (
                sa.select(m.ReviewDecision, m.User.name)
                .join(m.User, m.User.id == m.ReviewDecision.reviewer_id)
                .where(m.ReviewDecision.wafer_id == wafer_id)
                .order_by(m.ReviewDecision.id.desc())
            )
            return [
                {"reviewer": name, "decision": r.decision, "note": r.note, "at": r.at.isoformat()}
                for r, name in s.execute(q)
            ]

    def save_agreement(self, actor: UserRef, wafer_id: int, report: dict[str, Any]) -> int:
        """Keep a wafer's pairwise agreement (kappa, per-class IoU) from an agreement report.

        Replaces the rows computed before for that wafer; returns how many rows it wrote.
        """
        _require(actor, "review")
        with self.writes() as s, s.begin():
            ids = {n: i for n, i in s.execute(sa.select(m.User.name, m.User.id))}
            s.execute(sa.delete(m.AgreementMetric).where(m.AgreementMetric.wafer_id == wafer_id))
            names = {c.name: c.id for c in CLASSES}
            rows = 0
            for pair in report.get("pairs", []):
                a, b = ids.get(pair["a"]), ids.get(pair["b"])
                if a is None or b is None:
                    raise InvalidInputError(f"unknown annotator in {pair['a']!r}/{pair['b']!r}")
                values: list[tuple[int | None, str, float]] = [(None, "kappa", pair["cohen_kappa"])]
                for cname, d in pair["per_class"].items():
                    values += [(names[cname], "iou", d["iou"]), (names[cname], "dice", d["dice"])]
                for cls, metric, value in values:
                    if value == value:  # NaN (no dies) is not a measurement
                        s.add(
                            m.AgreementMetric(
                                wafer_id=wafer_id,
                                annotator_a=a,
                                annotator_b=b,
                                class_id=cls,
                                metric=metric,
                                value=float(value),
                            )
                        )
                        rows += 1
            return rows

    def delete_annotation(self, actor: UserRef, annotation_id: int, base_version: int) -> int:
        """Soft-delete from the version the editor saw; returns the new version."""
        _require(actor, "annotate")
        with self.writes() as s, s.begin():
            old = s.get(m.Annotation, annotation_id)
            if old is None:
                raise InvalidInputError(f"no annotation with id {annotation_id}")
            self._versioned_change(s, actor, old, base_version, "delete", None, {"deleted": True})
            return base_version + 1

    def _versioned_change(
        self,
        s: Session,
        actor: UserRef,
        old: m.Annotation,
        base_version: int,
        action: str,
        after: dict[str, Any] | None,
        values: dict[str, Any],
    ) -> None:
        """Apply ``values`` if the annotation is still at ``base_version``, and record the revision.

        Raises:
            ConflictError: Someone saved a newer version; it names that version and its author.
        """
        before = {"class_id": old.class_id, "geometry": old.geometry, "source": old.source}
        res = s.execute(
            sa.update(m.Annotation)
            .where(
                m.Annotation.id == old.id,
                m.Annotation.version == base_version,
                m.Annotation.deleted.is_(False),
            )
            .values(**values, author_id=actor.id, version=base_version + 1, updated_at=m.utcnow())
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise self._conflict(s, old.id, base_version)
        s.add(
            m.AnnotationRevision(
                annotation_id=old.id,
                wafer_id=old.wafer_id,
                user_id=actor.id,
                version=base_version + 1,
                action=action,
                before=before,
                after=after,
            )
        )

    def _conflict(self, s: Session, annotation_id: int, base_version: int) -> ConflictError:
        rev = s.execute(
            sa.select(m.AnnotationRevision, m.User.name)
            .join(m.User, m.User.id == m.AnnotationRevision.user_id)
            .where(m.AnnotationRevision.annotation_id == annotation_id)
            .order_by(m.AnnotationRevision.version.desc())
            .limit(1)
        ).first()
        if rev is None:
            return ConflictError(annotation_id, base_version, -1, "unknown")
        r, author = rev
        return ConflictError(
            annotation_id,
            base_version,
            r.version,
            author,
            {"version": r.version, "action": r.action, "after": r.after, "at": r.at.isoformat()},
        )

    def annotations(
        self,
        actor: UserRef,
        wafer_id: int,
        *,
        author: str | None = None,
        include_deleted: bool = False,
    ) -> list[dict[str, Any]]:
        """A wafer's annotations (optionally one author's)."""
        _require(actor, "read")
        with self.sessions() as s:
            q = (
                sa.select(m.Annotation, m.User.name)
                .join(m.User, m.User.id == m.Annotation.author_id)
                .where(m.Annotation.wafer_id == wafer_id)
                .order_by(m.Annotation.id)
            )
            if not include_deleted:
                q = q.where(m.Annotation.deleted.is_(False))
            if author is not None:
                q = q.where(m.User.name == author)
            return [
                {
                    "id": a.id,
                    "class_id": a.class_id,
                    "geometry": a.geometry,
                    "author": name,
                    "source": a.source,
                    "model_version": a.model_version,
                    "version": a.version,
                    "deleted": a.deleted,
                }
                for a, name in s.execute(q)
            ]

    def history(self, actor: UserRef, wafer_id: int) -> list[dict[str, Any]]:
        """Every revision of the wafer's annotations, oldest first."""
        _require(actor, "read")
        with self.sessions() as s:
            q = (
                sa.select(m.AnnotationRevision, m.User.name)
                .join(m.User, m.User.id == m.AnnotationRevision.user_id)
                .where(m.AnnotationRevision.wafer_id == wafer_id)
                .order_by(m.AnnotationRevision.id)
            )
            return [
                {
                    "annotation_id": r.annotation_id,
                    "version": r.version,
                    "action": r.action,
                    "user": name,
                    "at": r.at.isoformat() if isinstance(r.at, datetime) else str(r.at),
                    "before": r.before,
                    "after": r.after,
                }
                for r, name in s.execute(q)
            ]

    # ---- predictions ----------------------------------------------------------------------------

    def cached_prediction(
        self, actor: UserRef, wafer_hash: str, model_hash: str
    ) -> dict[str, Any] | None:
        """A cached prediction, or None."""
        _require(actor, "read")
        with self.sessions() as s:
            p = s.scalar(
                sa.select(m.Prediction).where(
                    m.Prediction.wafer_hash == wafer_hash, m.Prediction.model_hash == model_hash
                )
            )
            if p is None:
                return None
            return {
                "mask": zlib.decompress(p.mask),
                "pattern": p.pattern,
                "patterns": p.patterns,
                "pattern_probability": p.pattern_probability,
                "confidence": p.confidence,
                "uncertainty": p.uncertainty,
            }

    def cache_predictions(
        self,
        actor: UserRef,
        model_hash: str,
        items: Sequence[dict[str, Any]],
        *,
        lot_id: int | None = None,
        ms: float = 0.0,
    ) -> int:
        """Store predictions; existing ones are kept. Logs the inference run.

        Each item has ``wafer_hash``, ``mask`` (uint8 array), ``pattern``, ``patterns``,
        ``pattern_probability``, ``confidence`` and ``uncertainty``.
        """
        _require(actor, "infer")
        with self.writes() as s, s.begin():
            have = set(
                s.scalars(
                    sa.select(m.Prediction.wafer_hash).where(
                        m.Prediction.model_hash == model_hash,
                        m.Prediction.wafer_hash.in_([i["wafer_hash"] for i in items]),
                    )
                )
            )
            added = 0
            for i in items:
                if i["wafer_hash"] in have:
                    continue
                have.add(i["wafer_hash"])
                s.add(
                    m.Prediction(
                        wafer_hash=i["wafer_hash"],
                        model_hash=model_hash,
                        mask=zlib.compress(np.ascontiguousarray(i["mask"], np.uint8).tobytes()),
                        pattern=i["pattern"],
                        patterns=list(i["patterns"]),
                        pattern_probability=float(i["pattern_probability"]),
                        confidence=float(i["confidence"]),
                        uncertainty=float(i["uncertainty"]),
                    )
                )
                added += 1
            s.add(
                m.InferenceLog(
                    user_id=actor.id, model_hash=model_hash, lot_id=lot_id, wafers=len(items), ms=ms
                )
            )
            return added

    # ---- embeddings and the active-learning queue ------------------------------------------------

    def save_embeddings(self, actor: UserRef, model_hash: str, vectors: dict[int, Any]) -> int:
        """Keep wafers' embedding vectors under a model (existing ones are kept); returns added."""
        _require(actor, "infer")
        if not vectors:
            return 0
        with self.writes() as s, s.begin():
            have = set(
                s.scalars(
                    sa.select(m.Embedding.wafer_id).where(
                        m.Embedding.model_hash == model_hash,
                        m.Embedding.wafer_id.in_(list(vectors)),
                    )
                )
            )
            added = 0
            for wid, vec in vectors.items():
                if wid not in have:
                    blob = np.ascontiguousarray(vec, np.float32).tobytes()
                    s.add(m.Embedding(wafer_id=wid, model_hash=model_hash, vector=blob))
                    added += 1
            return added

    def embeddings(
        self, actor: UserRef, model_hash: str, wafer_ids: Sequence[int] | None = None
    ) -> dict[int, Any]:
        """Stored embeddings under a model (of the given wafers, or all), as float32 vectors."""
        _require(actor, "read")
        with self.sessions() as s:
            q = sa.select(m.Embedding.wafer_id, m.Embedding.vector).where(
                m.Embedding.model_hash == model_hash
            )
            if wafer_ids is not None:
                q = q.where(m.Embedding.wafer_id.in_(list(wafer_ids)))
            return {w: np.frombuffer(v, np.float32) for w, v in s.execute(q)}

    def queue_al(self, actor: UserRef, strategy: str, picks: Sequence[tuple[int, float]]) -> int:
        """Replace the still-queued active-learning items by these (wafer id, score), in order."""
        _require(actor, "infer")
        with self.writes() as s, s.begin():
            s.execute(sa.delete(m.ALQueueItem).where(m.ALQueueItem.status == "queued"))
            for rank, (wid, score) in enumerate(picks, start=1):
                s.add(m.ALQueueItem(wafer_id=wid, strategy=strategy, score=float(score), rank=rank))
            return len(picks)

    def al_queue(self, actor: UserRef, model_hash: str | None = None) -> list[dict[str, Any]]:
        """The queued wafers in rank order, with their lot, key and annotation status.

        With ``model_hash`` each row also has ``predicted``: that model's cached pattern for the
        wafer (None when it has not predicted it), so a reader sees what kind of wafers the
        queue holds.
        """
        _require(actor, "read")
        with self.sessions() as s:
            pattern = m.Prediction.pattern if model_hash else sa.null()
            q = (
                sa.select(m.ALQueueItem, m.Wafer.wafer_key, m.Wafer.status, m.Lot.name, pattern)
                .join(m.Wafer, m.Wafer.id == m.ALQueueItem.wafer_id)
                .join(m.Lot, m.Lot.id == m.Wafer.lot_id)
                .where(m.ALQueueItem.status == "queued")
                .order_by(m.ALQueueItem.rank)
            )
            if model_hash:
                q = q.outerjoin(
                    m.Prediction,
                    sa.and_(
                        m.Prediction.wafer_hash == m.Wafer.content_hash,
                        m.Prediction.model_hash == model_hash,
                    ),
                )
            return [
                {
                    "rank": it.rank,
                    "wafer_id": it.wafer_id,
                    "lot": lot,
                    "wafer": key,
                    "strategy": it.strategy,
                    "score": it.score,
                    "wafer_status": status,
                    **({"predicted": predicted} if model_hash else {}),
                }
                for it, key, status, lot, predicted in s.execute(q)
            ]

    # ---- jobs -----------------------------------------------------------------------------------

    def enqueue_job(self, actor: UserRef, config: dict[str, Any], kind: str = "train") -> int:
        """Queue a job for a worker."""
        _require(actor, "train" if kind == "train" else "infer")
        with self.writes() as s, s.begin():
            job = m.TrainingJob(kind=kind, config=config, created_by=actor.id)
            s.add(job)
            s.flush()
            return job.id

    def claim_job(
        self, worker_host: str, kinds: Sequence[str] = ("train", "infer")
    ) -> dict[str, Any] | None:
        """Atomically take the oldest queued job (SKIP LOCKED on PostgreSQL, a lock on SQLite)."""
        with self.writes() as s, s.begin():
            q = (
                sa.select(m.TrainingJob)
                .where(m.TrainingJob.status == "queued", m.TrainingJob.kind.in_(kinds))
                .order_by(m.TrainingJob.id)
                .limit(1)
            )
            # PostgreSQL: lock the row and let other workers skip it. SQLite: this write
            # session already holds the database's only write lock, so the read is stable.
            if not self.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            job = s.scalar(q)
            if job is None:
                return None
            now = m.utcnow()
            job.status, job.worker_host, job.started_at, job.heartbeat_at = (
                "running",
                worker_host,
                now,
                now,
            )
            return {"id": job.id, "kind": job.kind, "config": job.config}

    def job_owner(self, job_id: int) -> UserRef:
        """The user who queued a job (the worker records its results as theirs)."""
        with self.sessions() as s:
            row = s.execute(
                sa.select(m.User)
                .join(m.TrainingJob, m.TrainingJob.created_by == m.User.id)
                .where(m.TrainingJob.id == job_id)
            ).scalar_one_or_none()
            if row is None:
                raise InvalidInputError(f"job {job_id} has no owner")
            return UserRef(row.id, row.name, row.role)

    def heartbeat(self, job_id: int) -> bool:
        """Record that the worker is alive; returns True when a cancel was requested."""
        with self.writes() as s, s.begin():
            job = s.get(m.TrainingJob, job_id)
            if job is None:
                raise InvalidInputError(f"no job with id {job_id}")
            job.heartbeat_at = m.utcnow()
            return bool(job.cancel_requested)

    def finish_job(self, job_id: int, status: str, error_text: str = "") -> None:
        """Mark a job succeeded, failed or cancelled."""
        if status not in ENDED_JOB_STATES:
            raise InvalidInputError(
                f"a finished job is succeeded, failed or cancelled, found {status!r}"
            )
        with self.writes() as s, s.begin():
            s.execute(
                sa.update(m.TrainingJob)
                .where(m.TrainingJob.id == job_id)
                .values(status=status, error_text=error_text, finished_at=m.utcnow())
            )

    def request_cancel(self, actor: UserRef, job_id: int) -> str:
        """Ask a job to stop (a queued job is cancelled at once); returns its status then.

        Raises:
            InvalidInputError: No such job, or it has ended already.
        """
        _require(actor, "train")
        with self.writes() as s, s.begin():
            job = s.get(m.TrainingJob, job_id)
            if job is None:
                raise InvalidInputError(f"no job with id {job_id}")
            if job.status in ENDED_JOB_STATES:
                raise InvalidInputError(
                    f"job {job_id}: expected a queued or running job, found it {job.status}"
                )
            job.cancel_requested = True
            if job.status == "queued":
                job.status, job.finished_at = "cancelled", m.utcnow()
            return str(job.status)

    def add_epoch(self, job_id: int, epoch: int, metrics: dict[str, Any]) -> None:
        """Store one epoch's metrics of a job."""
        with self.writes() as s, s.begin():
            s.add(m.EpochMetric(job_id=job_id, epoch=epoch, metrics=metrics))

    def job(self, actor: UserRef, job_id: int) -> dict[str, Any]:
        """A job with its epoch metrics."""
        _require(actor, "read")
        with self.sessions() as s:
            job = s.get(m.TrainingJob, job_id)
            if job is None:
                raise InvalidInputError(f"no job with id {job_id}")
            epochs = [
                e.metrics
                for e in s.scalars(
                    sa.select(m.EpochMetric)
                    .where(m.EpochMetric.job_id == job_id)
                    .order_by(m.EpochMetric.epoch)
                )
            ]
            return {
                "id": job.id,
                "kind": job.kind,
                "status": job.status,
                "config": job.config,
                "worker_host": job.worker_host,
                "error_text": job.error_text,
                "epochs": epochs,
            }

    def jobs(
        self, actor: UserRef, limit: int = 100, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest jobs (of one status), their configuration, epochs and model version."""
        _require(actor, "read")
        with self.sessions() as s:
            q = sa.select(m.TrainingJob).order_by(m.TrainingJob.id.desc()).limit(limit)
            if status is not None:
                q = q.where(m.TrainingJob.status == status)
            jobs = s.scalars(q).all()
            ids = [j.id for j in jobs]
            models = {
                j: v
                for j, v in s.execute(
                    sa.select(m.ModelVersion.job_id, m.ModelVersion.id).where(
                        m.ModelVersion.job_id.in_(ids)
                    )
                )
            }
            epochs = {
                j: n
                for j, n in s.execute(
                    sa.select(m.EpochMetric.job_id, sa.func.count(m.EpochMetric.id))
                    .where(m.EpochMetric.job_id.in_(ids))
                    .group_by(m.EpochMetric.job_id)
                )
            }
            users = {u.id: u.name for u in s.scalars(sa.select(m.User))}
            return [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "status": j.status,
                    "config": j.config,
                    "created_by": users.get(j.created_by or -1, ""),
                    "created_at": j.created_at.isoformat(),
                    "worker_host": j.worker_host,
                    "cancel_requested": j.cancel_requested,
                    "epochs": epochs.get(j.id, 0),
                    "model_id": models.get(j.id),
                }
                for j in jobs
            ]

    # ---- model registry -------------------------------------------------------------------------

    def register_model(
        self,
        actor: UserRef,
        name: str,
        file_path: str,
        file_hash: str,
        metrics: dict[str, Any] | None = None,
        job_id: int | None = None,
    ) -> int:
        """Record a model version (idempotent on the file hash)."""
        _require(actor, "train")
        with self.writes() as s, s.begin():
            have = s.scalar(
                sa.select(m.ModelVersion.id).where(m.ModelVersion.file_hash == file_hash)
            )
            if have is not None:
                return int(have)
            mv = m.ModelVersion(
                name=name,
                file_path=file_path,
                file_hash=file_hash,
                metrics=metrics or {},
                job_id=job_id,
            )
            s.add(mv)
            s.flush()
            return mv.id

    def promote(self, actor: UserRef, model_id: int) -> None:
        """Make a model version the active one."""
        _require(actor, "promote")
        with self.writes() as s, s.begin():
            if s.get(m.ModelVersion, model_id) is None:
                raise InvalidInputError(f"no model version with id {model_id}")
            s.execute(sa.update(m.ModelVersion).values(active=False))
            s.execute(
                sa.update(m.ModelVersion).where(m.ModelVersion.id == model_id).values(active=True)
            )

    def models(self, actor: UserRef) -> list[dict[str, Any]]:
        """Every model version, newest first."""
        _require(actor, "read")
        with self.sessions() as s:
            return [
                {
                    "id": v.id,
                    "name": v.name,
                    "file_path": v.file_path,
                    "file_hash": v.file_hash,
                    "metrics": v.metrics,
                    "active": v.active,
                    "job_id": v.job_id,
                }
                for v in s.scalars(sa.select(m.ModelVersion).order_by(m.ModelVersion.id.desc()))
            ]


def _require(actor: UserRef | None, permission: str) -> None:
    if actor is None or not actor.can(permission):
        who = f"{actor.name} ({actor.role})" if actor else "nobody"
        raise PermissionDeniedError(f"{who} may not {permission}; ask an admin for a role that can")
