"""Models of batches.execution: master batch records (recipes), materials, executed batch records,
their steps and entries, exceptions for review by exception, deviations and equipment occupancy."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited, Voidable
from app.db import Base, utcnow
from app.signatures import Signable

RECIPE_STATUSES = ("draft", "in_review", "approved", "superseded")
BATCH_STATUSES = ("planned", "in_progress", "on_hold", "completed", "in_review", "released", "rejected", "aborted")
STEP_STATUSES = ("pending", "in_progress", "performed", "complete")
QC_STATUSES = ("quarantined", "released", "rejected")
LIMIT_CLASSES = ("green", "amber", "red", "none")
DEVIATION_CLASSES = ("minor", "major", "critical")
EXCEPTION_KINDS = ("out_of_limit", "correction", "out_of_order", "late", "scan_override", "alarm",
                   "telemetry_gap", "comment", "early")


_PARSED_DEFINITIONS: dict[str, dict[str, Any]] = {}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Recipe(Signable, Audited, Base):
    """One version of a master batch record; approved versions are immutable."""

    __tablename__ = "recipe"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(_in("status", RECIPE_STATUSES), name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
    __unsigned_fields__ = frozenset({"status", "submitted_at", "approved_at", "approved_by", "approval_note",
                                     "superseded_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    definition: Mapped[str] = mapped_column(Text)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str | None] = mapped_column(String(200))
    change_summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    submitted_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(80))
    approval_note: Mapped[str | None] = mapped_column(Text)
    superseded_at: Mapped[datetime | None]

    @property
    def spec(self) -> dict[str, Any]:
        """The parsed definition (phases, steps, entries), shared by every request of the process: the
        content is addressed by its SHA-256, so an edited draft gets a fresh parse."""
        spec = _PARSED_DEFINITIONS.get(self.definition_sha256)
        if spec is None:
            if len(_PARSED_DEFINITIONS) > 256:
                _PARSED_DEFINITIONS.clear()
            spec = _PARSED_DEFINITIONS[self.definition_sha256] = json.loads(self.definition)
        return spec

    @property
    def label(self) -> str:
        return f"{self.code} v{self.version}"


class Material(Audited, Base):
    """A kind of material used in batches (kit, cytokine, medium, reagent, vector)."""

    __tablename__ = "material"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lots: Mapped[list["MaterialLot"]] = relationship(back_populates="material", order_by="MaterialLot.id")


class MaterialLot(Signable, Audited, Voidable, Base):
    """A received lot of a material with its expiry and QC status; each QC status change is e-signed by QC/QA."""

    __tablename__ = "material_lot"
    __table_args__ = (
        UniqueConstraint("material_id", "lot_number"),
        CheckConstraint(_in("qc_status", QC_STATUSES), name="qc_status"),
        CheckConstraint("quantity_remaining >= 0", name="quantity_not_negative"),
    )

    __unsigned_fields__ = frozenset({"quantity_remaining"})  # consumption does not change what QC signed

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    material_id: Mapped[int] = mapped_column(ForeignKey("material.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(80), index=True)
    supplier: Mapped[str | None] = mapped_column(String(200))
    expiry_date: Mapped[date] = mapped_column(Date)
    qc_status: Mapped[str] = mapped_column(String(20), default="quarantined")
    quantity_received: Mapped[float] = mapped_column(Float)
    quantity_remaining: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    material: Mapped[Material] = relationship(back_populates="lots", lazy="joined")


class Batch(Signable, Audited, Base):
    """An executed electronic batch record: one cord blood unit run through one recipe version."""

    __tablename__ = "batch"
    __table_args__ = (CheckConstraint(_in("status", BATCH_STATUSES), name="status"),)
    __unsigned_fields__ = frozenset({"status", "status_reason", "completed_at", "row_version"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_number: Mapped[str] = mapped_column(String(40), unique=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipe.id"), index=True)
    cord_blood_unit_id: Mapped[int] = mapped_column(ForeignKey("cord_blood_unit.id"), index=True)
    cord_blood_din: Mapped[str] = mapped_column(String(20))
    exceptional_release: Mapped[bool] = mapped_column(Boolean, default=False)
    product: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="in_progress")
    status_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(80))
    completed_at: Mapped[datetime | None]
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    recipe: Mapped[Recipe] = relationship(lazy="joined")
    steps: Mapped[list["BatchStep"]] = relationship(back_populates="batch", order_by="BatchStep.position")

    __mapper_args__ = {"version_id_col": row_version}


class BatchStep(Signable, Audited, Base):
    """One step of a batch: signed 'performed' (and 'verified' where the recipe asks) over its entries."""

    __tablename__ = "batch_step"
    __table_args__ = (
        UniqueConstraint("batch_id", "position"),
        UniqueConstraint("batch_id", "step_key"),
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
    )
    __unsigned_fields__ = frozenset({"status", "taken_by_id", "taken_by", "taken_since", "performed_at",
                                     "completed_at", "row_version", "started_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    phase_name: Mapped[str] = mapped_column(String(200))
    step_key: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    planned_day: Mapped[float] = mapped_column(Float)
    window_hours: Mapped[float] = mapped_column(Float)
    requires_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    any_order: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # The SHA-256 of the step's current entries: part of the signed content, so a later change to an
    # entry shows the step's signatures as "record changed after signature".
    entries_digest: Mapped[str] = mapped_column(String(64), default="")
    taken_by_id: Mapped[int | None] = mapped_column(Integer)
    taken_by: Mapped[str | None] = mapped_column(String(80))
    taken_since: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    performed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    batch: Mapped[Batch] = relationship(back_populates="steps")
    entries: Mapped[list["StepEntry"]] = relationship(back_populates="step", order_by="StepEntry.id")

    __mapper_args__ = {"version_id_col": row_version}

    @property
    def spec(self) -> dict[str, Any]:
        """This step as the batch's recipe version defines it."""
        from batches.execution.recipes import step_spec

        return step_spec(self.batch.recipe, self.step_key)


class StepEntry(Audited, Voidable, Base):
    """One recorded value; a correction voids it (kept) and adds a new row that replaces it."""

    __tablename__ = "step_entry"
    __table_args__ = (CheckConstraint(_in("limit_class", LIMIT_CLASSES), name="limit_class"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("batch_step.id"), index=True)
    entry_key: Mapped[str] = mapped_column(String(80))
    entry_type: Mapped[str] = mapped_column(String(20))
    value_text: Mapped[str] = mapped_column(Text)
    value_number: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(20))
    limit_class: Mapped[str] = mapped_column(String(10), default="none")
    comment: Mapped[str | None] = mapped_column(Text)
    material_lot_id: Mapped[int | None] = mapped_column(ForeignKey("material_lot.id"))
    quantity: Mapped[float | None] = mapped_column(Float)
    asset_code: Mapped[str | None] = mapped_column(String(80))
    override_reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None]
    recorded_at: Mapped[datetime]
    recorded_by_id: Mapped[int | None] = mapped_column(Integer)
    recorded_by: Mapped[str] = mapped_column(String(80))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("step_entry.id"))

    step: Mapped[BatchStep] = relationship(back_populates="entries")
    material_lot: Mapped[MaterialLot | None] = relationship()


class MaterialUsage(Audited, Voidable, Base):
    """Genealogy: a quantity of a material lot consumed by a batch step."""

    __tablename__ = "material_usage"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("batch_step.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("step_entry.id"))
    material_lot_id: Mapped[int] = mapped_column(ForeignKey("material_lot.id"), index=True)
    quantity: Mapped[float] = mapped_column(Float)
    used_at: Mapped[datetime]
    used_by: Mapped[str] = mapped_column(String(80))

    material_lot: Mapped[MaterialLot] = relationship(lazy="joined")


class EquipmentOccupancy(Audited, Base):
    """A batch's time in an incubator or bioreactor: alarms and gaps inside it belong to the batch."""

    __tablename__ = "equipment_occupancy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("batch_step.id"))
    entry_key: Mapped[str] = mapped_column(String(80))
    asset_id: Mapped[int] = mapped_column(Integer, index=True)
    asset_code: Mapped[str] = mapped_column(String(80))
    usage_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class BatchException(Audited, Base):
    """Something QA must look at when reviewing by exception, linked to its source record."""

    __tablename__ = "batch_exception"
    __table_args__ = (
        UniqueConstraint("batch_id", "kind", "source_table", "source_id"),
        CheckConstraint(_in("kind", EXCEPTION_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("batch_step.id"))
    kind: Mapped[str] = mapped_column(String(20))
    source_table: Mapped[str] = mapped_column(String(80))
    source_id: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    raised_by: Mapped[str] = mapped_column(String(80))
    deviation_id: Mapped[int | None] = mapped_column(ForeignKey("deviation.id"))
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    review_comment: Mapped[str | None] = mapped_column(Text)
    review_id: Mapped[int | None] = mapped_column(ForeignKey("exception_review.id"))

    @property
    def kind_label(self) -> str:
        return self.kind.replace("_", " ")

    def review_line(self) -> str:
        """How the exception is named in the signed content of its review."""
        return f"#{self.id} {self.kind}: {self.description}"


class ExceptionReview(Signable, Audited, Base):
    """QA's review decision over one or more exceptions of a batch, e-signed "reviewed".

    ``covered`` lists every exception the decision covers (one line each, with its id and text): it is
    part of the signed content, so the signature cannot be moved to other exceptions."""

    __tablename__ = "exception_review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    covered: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    reviewed_at: Mapped[datetime]
    reviewed_by: Mapped[str] = mapped_column(String(80))


class Deviation(Signable, Audited, Base):
    """A deviation: opened automatically or by hand, classified, assessed and closed by QA signature."""

    __tablename__ = "deviation"
    __table_args__ = (
        CheckConstraint("classification IS NULL OR " + _in("classification", DEVIATION_CLASSES),
                        name="classification"),
        CheckConstraint(_in("status", ("open", "closed")), name="status"),
    )
    __unsigned_fields__ = frozenset({"status", "closed_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("batch_step.id"))
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("step_entry.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    classification: Mapped[str | None] = mapped_column(String(20))
    impact_assessment: Mapped[str | None] = mapped_column(Text)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(80))
    closed_at: Mapped[datetime | None]

    batch: Mapped[Batch | None] = relationship()
