"""Models of batches.quality: final product units (infusion bags) with their chain of identity, versioned
release specifications, and each lot's quality record (the specification it is judged against)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited, Voidable
from app.db import Base, utcnow
from app.signatures import Signable
from batches.execution.models import Batch

SPEC_STATUSES = ("draft", "in_review", "approved", "superseded")
LOT_STATUSES = ("in_testing", "released", "conditionally_released", "rejected", "on_recall")
UNIT_STATUSES = ("quarantined", "available", "conditionally_available", "blocked", "for_destruction")
# Lot status -> the status its bags take.
UNIT_STATUS_FOR_LOT = {"in_testing": "quarantined", "released": "available",
                       "conditionally_released": "conditionally_available", "rejected": "for_destruction",
                       "on_recall": "blocked"}
ISSUABLE_UNIT_STATUSES = ("available", "conditionally_available")

_PARSED: dict[str, dict[str, Any]] = {}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Specification(Signable, Audited, Base):
    """One version of a product's release specification; approved versions never change."""

    __tablename__ = "specification"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(_in("status", SPEC_STATUSES), name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
    __unsigned_fields__ = frozenset({"status", "submitted_at", "approved_at", "approved_by", "approval_note",
                                     "superseded_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(String(80), index=True)
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
        """The parsed definition (tests with method, result type, criterion, gating, sample, time point)."""
        parsed = _PARSED.get(self.definition_sha256)
        if parsed is None:
            if len(_PARSED) > 256:
                _PARSED.clear()
            parsed = _PARSED[self.definition_sha256] = json.loads(self.definition)
        return parsed

    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.spec["tests"]

    @property
    def label(self) -> str:
        return f"{self.code} v{self.version}"


class QualityLot(Audited, Base):
    """A batch seen as a lot under QC and QA: the specification version it is judged against (the one in
    force when its testing started), the per-kg limits kept for dose allocation, and its disposition."""

    __tablename__ = "quality_lot"
    __table_args__ = (CheckConstraint(_in("status", LOT_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), unique=True)
    lot_number: Mapped[str] = mapped_column(String(40), unique=True)
    product: Mapped[str] = mapped_column(String(80))
    specification_id: Mapped[int | None] = mapped_column(ForeignKey("specification.id"), index=True)
    testing_started_at: Mapped[datetime | None]
    # JSON list of {test, name, unit_per_kg, limit, operator}: the limits checked per recipient's kg.
    per_kg_limits: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(30), default="in_testing")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    batch: Mapped[Batch] = relationship(lazy="joined")
    specification: Mapped[Specification | None] = relationship(lazy="joined")

    @property
    def per_kg(self) -> list[dict[str, Any]]:
        return json.loads(self.per_kg_limits) if self.per_kg_limits else []


class FinalProductUnit(Audited, Voidable, Base):
    """One infusion bag filled from a batch: its product identifier (the batch's chain of identity plus a
    division number, no patient data), contents, expiry, storage and availability."""

    __tablename__ = "final_product_unit"
    __table_args__ = (
        UniqueConstraint("batch_id", "division"),
        CheckConstraint(_in("status", UNIT_STATUSES), name="status"),
        CheckConstraint("division >= 1", name="division_positive"),
        CheckConstraint("viable_cells >= 0", name="viable_cells_not_negative"),
        CheckConstraint("volume_ml IS NULL OR volume_ml > 0", name="volume_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_identifier: Mapped[str] = mapped_column(String(80), unique=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    cord_blood_unit_id: Mapped[int] = mapped_column(ForeignKey("cord_blood_unit.id"), index=True)
    cord_blood_din: Mapped[str] = mapped_column(String(20))
    lot_number: Mapped[str] = mapped_column(String(40))
    product: Mapped[str] = mapped_column(String(80))
    division: Mapped[int] = mapped_column(Integer)
    volume_ml: Mapped[float | None] = mapped_column(Float)
    viable_cells: Mapped[float] = mapped_column(Float)
    viable_cells_source: Mapped[str] = mapped_column(String(200))
    filled_at: Mapped[datetime]
    filled_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime]
    storage_condition: Mapped[str] = mapped_column(String(80))
    storage_location: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(30), default="quarantined")

    batch: Mapped[Batch] = relationship(lazy="joined")

    @property
    def status_label(self) -> str:
        return self.status.replace("_", " ")

    @property
    def issuable(self) -> bool:
        return self.voided_at is None and self.status in ISSUABLE_UNIT_STATUSES and self.expires_at > utcnow()


SAMPLE_SOURCES = ("batch_record", "qc")
RESULT_STATUSES = ("recorded", "reviewed", "invalidated")
RESULT_SOURCES = ("entered", "batch_record", "instrument_import")
OUTCOMES = ("pass", "fail")
INVESTIGATION_STATUSES = ("phase_1", "phase_2", "closed")
INVESTIGATION_CONCLUSIONS = ("confirmed", "invalidated")


class QcSample(Audited, Voidable, Base):
    """A sample of a lot drawn in the batch record or by QC: its identifier goes on the sample label."""

    __tablename__ = "qc_sample"
    __table_args__ = (CheckConstraint(_in("source", SAMPLE_SOURCES), name="source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_identifier: Mapped[str] = mapped_column(String(60), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("quality_lot.id"), index=True)
    sample_type: Mapped[str] = mapped_column(String(80))
    time_point: Mapped[str] = mapped_column(String(120))
    tests: Mapped[str] = mapped_column(Text, default="")  # comma-separated test keys the sample is for
    source: Mapped[str] = mapped_column(String(20), default="qc")
    drawn_at: Mapped[datetime]
    drawn_by: Mapped[str] = mapped_column(String(80))

    @property
    def test_keys(self) -> list[str]:
        return [k for k in self.tests.split(",") if k]


class QcResult(Signable, Audited, Base):
    """One QC result against one test of the lot's specification. Never overwritten: a retest is a new row
    inside an OOS investigation; an invalidated result keeps its value and the reason."""

    __tablename__ = "qc_result"
    __table_args__ = (
        CheckConstraint(_in("status", RESULT_STATUSES), name="status"),
        CheckConstraint(_in("source", RESULT_SOURCES), name="source"),
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        CheckConstraint("status != 'invalidated' OR invalidated_reason IS NOT NULL", name="invalidated_has_reason"),
    )
    __unsigned_fields__ = frozenset({"status", "reviewed_at", "reviewed_by", "reportable", "invalidated_at",
                                     "invalidated_by", "invalidated_reason", "investigation_id"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("quality_lot.id"), index=True)
    specification_id: Mapped[int] = mapped_column(ForeignKey("specification.id"))
    test_key: Mapped[str] = mapped_column(String(80))
    test_name: Mapped[str] = mapped_column(String(200))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("qc_sample.id"))
    source: Mapped[str] = mapped_column(String(20), default="entered")
    source_entry_id: Mapped[int | None] = mapped_column(ForeignKey("step_entry.id"))
    source_file_id: Mapped[int | None] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(200))
    raw_value: Mapped[str] = mapped_column(Text)
    value_number: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(10))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(80))
    retest_of_id: Mapped[int | None] = mapped_column(ForeignKey("qc_result.id"))
    # The OOS investigation the result belongs to (the one it opened, or the one a retest was made in);
    # a plain column, as the investigation points back at its original result.
    investigation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    reportable: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(20), default="recorded")
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    invalidated_at: Mapped[datetime | None]
    invalidated_by: Mapped[str | None] = mapped_column(String(80))
    invalidated_reason: Mapped[str | None] = mapped_column(Text)

    sample: Mapped[QcSample | None] = relationship(lazy="joined")

    @property
    def source_label(self) -> str:
        return {"entered": "entered by QC", "batch_record": "from the batch record",
                "instrument_import": "instrument import"}[self.source]


class OosInvestigation(Signable, Audited, Base):
    """An out-of-specification investigation (21 CFR 211.192), opened automatically by a failing result:
    phase I (laboratory error?), phase II (manufacturing), conclusion and QA closure signature."""

    __tablename__ = "oos_investigation"
    __table_args__ = (
        CheckConstraint(_in("status", INVESTIGATION_STATUSES), name="status"),
        CheckConstraint("conclusion IS NULL OR " + _in("conclusion", INVESTIGATION_CONCLUSIONS), name="conclusion"),
    )
    __unsigned_fields__ = frozenset({"status", "closed_at", "closed_by"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("quality_lot.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("qc_result.id"))
    test_key: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="phase_1")
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(80))
    laboratory_error: Mapped[bool | None]
    phase1_assessment: Mapped[str | None] = mapped_column(Text)
    phase2_assessment: Mapped[str | None] = mapped_column(Text)
    root_cause: Mapped[str | None] = mapped_column(Text)
    conclusion: Mapped[str | None] = mapped_column(String(20))
    conclusion_text: Mapped[str | None] = mapped_column(Text)
    reportable_result_id: Mapped[int | None] = mapped_column(ForeignKey("qc_result.id"))
    after_disposition: Mapped[bool] = mapped_column(default=False)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(80))

    @property
    def is_open(self) -> bool:
        return self.status != "closed"


DISPOSITION_DECISIONS = ("released", "conditionally_released", "rejected", "on_recall")


class LotDisposition(Signable, Audited, Base):
    """One QA disposition decision on a lot, signed (released, rejected) with its reason and, for a
    conditional release, the tests still pending; a recall is recorded the same way."""

    __tablename__ = "lot_disposition"
    __table_args__ = (CheckConstraint(_in("decision", DISPOSITION_DECISIONS), name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("quality_lot.id"), index=True)
    decision: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(Text)
    pending_tests: Mapped[str] = mapped_column(Text, default="")  # comma-separated test keys
    decided_at: Mapped[datetime]
    decided_by: Mapped[str] = mapped_column(String(80))

    @property
    def pending_keys(self) -> list[str]:
        return [k for k in self.pending_tests.split(",") if k]


INSTRUMENT_KINDS = ("flow_cytometry", "endotoxin")


class InstrumentFile(Audited, Base):
    """An instrument export imported as results, kept whole with its SHA-256."""

    __tablename__ = "instrument_file"
    __table_args__ = (UniqueConstraint("lot_id", "sha256"), CheckConstraint(_in("kind", INSTRUMENT_KINDS), name="kind"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("quality_lot.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    row_count: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(80))
