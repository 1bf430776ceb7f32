"""SQLAlchemy 2 typed models of everything the store keeps.

Constraint names follow one convention (so migrations name them the same on SQLite and
PostgreSQL); relationships are ``lazy="raise"``: every query says what it loads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now (stored as UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


Stamp = sa.DateTime(timezone=True)


class User(Base):
    """A person (or the local user of a single-user store)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    password_hash: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Lot(Base):
    """A lot: a named group of wafers."""

    __tablename__ = "lots"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    wafers: Mapped[list[Wafer]] = relationship(back_populates="lot", lazy="raise")


class Wafer(Base):
    """A wafer map: the canonical grid (zlib-compressed bytes), shape, hash and metadata."""

    __tablename__ = "wafers"
    __table_args__ = (
        sa.UniqueConstraint("lot_id", "wafer_key", name="uq_wafers_lot_id_wafer_key"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(sa.ForeignKey("lots.id", ondelete="CASCADE"), index=True)
    wafer_key: Mapped[str] = mapped_column(sa.String(120))
    rows: Mapped[int]
    cols: Mapped[int]
    grid: Mapped[bytes] = mapped_column(sa.LargeBinary)
    content_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    dies: Mapped[int]
    fail_dies: Mapped[int]
    source_file: Mapped[str] = mapped_column(sa.String(1000), default="")
    source_format: Mapped[str] = mapped_column(sa.String(40), default="")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default="new")  # new, annotated, reviewed
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    lot: Mapped[Lot] = relationship(back_populates="wafers", lazy="raise")


class Annotation(Base):
    """One class region on a wafer, with a version for optimistic locking and a soft delete."""

    __tablename__ = "annotations"
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("wafers.id", ondelete="CASCADE"), index=True
    )
    class_id: Mapped[int]
    geometry: Mapped[dict[str, Any]]
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(sa.String(20), default="manual")
    model_version: Mapped[str] = mapped_column(sa.String(100), default="")
    version: Mapped[int] = mapped_column(default=1)
    deleted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class AnnotationRevision(Base):
    """Append-only history: who changed which annotation when, before and after."""

    __tablename__ = "annotation_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    wafer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("wafers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    version: Mapped[int]
    action: Mapped[str] = mapped_column(sa.String(10))  # create, update, delete
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class ReviewDecision(Base):
    """A reviewer's decision on a wafer (accepted, rejected, consensus saved)."""

    __tablename__ = "review_decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("wafers.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(sa.String(20))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Prediction(Base):
    """The prediction cache: one row per (wafer content, model)."""

    __tablename__ = "predictions"
    __table_args__ = (
        sa.UniqueConstraint(
            "wafer_hash", "model_hash", name="uq_predictions_wafer_hash_model_hash"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_hash: Mapped[str] = mapped_column(sa.String(64))
    model_hash: Mapped[str] = mapped_column(sa.String(64))
    mask: Mapped[bytes] = mapped_column(sa.LargeBinary)
    pattern: Mapped[str] = mapped_column(sa.String(20))
    patterns: Mapped[list[Any]]
    pattern_probability: Mapped[float]  # the wafer head's probability of ``pattern``
    confidence: Mapped[float]
    uncertainty: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class InferenceLog(Base):
    """Who ran which model on how many wafers, and how long it took."""

    __tablename__ = "inference_logs"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    model_hash: Mapped[str] = mapped_column(sa.String(64))
    lot_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lots.id", ondelete="SET NULL"))
    wafers: Mapped[int]
    ms: Mapped[float]
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class TrainingJob(Base):
    """A queued, running or finished training (or batch inference) job."""

    __tablename__ = "training_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default="train")
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(sa.String(20), default="queued", index=True)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Stamp)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Stamp)
    worker_host: Mapped[str] = mapped_column(sa.String(200), default="")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error_text: Mapped[str] = mapped_column(sa.Text, default="")


class EpochMetric(Base):
    """One epoch's metrics of a job."""

    __tablename__ = "epoch_metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(
        sa.ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    epoch: Mapped[int]
    metrics: Mapped[dict[str, Any]]


class ModelVersion(Base):
    """A trained model file with its metrics; one may be the active model."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    file_path: Mapped[str] = mapped_column(sa.String(1000))
    file_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("training_jobs.id", ondelete="SET NULL")
    )
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Embedding(Base):
    """A wafer's embedding vector under one model (float32 bytes)."""

    __tablename__ = "embeddings"
    __table_args__ = (
        sa.UniqueConstraint("wafer_id", "model_hash", name="uq_embeddings_wafer_id_model_hash"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_id: Mapped[int] = mapped_column(sa.ForeignKey("wafers.id", ondelete="CASCADE"))
    model_hash: Mapped[str] = mapped_column(sa.String(64))
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)


class ALQueueItem(Base):
    """A wafer proposed for annotation by an active-learning query."""

    __tablename__ = "al_queue"
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("wafers.id", ondelete="CASCADE"), index=True
    )
    strategy: Mapped[str] = mapped_column(sa.String(20))
    score: Mapped[float]
    rank: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20), default="queued")
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class AgreementMetric(Base):
    """Agreement between two annotators on a wafer (per class or overall)."""

    __tablename__ = "agreement_metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    wafer_id: Mapped[int] = mapped_column(
        sa.ForeignKey("wafers.id", ondelete="CASCADE"), index=True
    )
    annotator_a: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    annotator_b: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    class_id: Mapped[int | None]
    metric: Mapped[str] = mapped_column(sa.String(20))
    value: Mapped[float]
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
