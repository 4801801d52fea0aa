"""Models of batches.sourcing: cord blood units, their custody events, acceptance criteria and results.

Status (QA disposition) and custody state are two separate facts about a unit: a unit can be accepted
and still be out of storage; only a unit that is accepted AND in storage can be assigned to a batch.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited
from app.db import Base
from app.signatures import Signable

# Unit status (QA disposition, 21 CFR 1271.60): received -> quarantine -> accepted | rejected.
STATUS_RECEIVED = "received"
STATUS_QUARANTINE = "quarantine"
STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
STATUSES = (STATUS_RECEIVED, STATUS_QUARANTINE, STATUS_ACCEPTED, STATUS_REJECTED)

# Where the unit physically is.
CUSTODY_IN_STORAGE = "in_storage"
CUSTODY_REMOVED = "removed"
CUSTODY_ISSUED = "issued"  # removed for thaw into a batch: it can never be assigned again
CUSTODY_DISPOSED = "disposed"
CUSTODY_STATES = (CUSTODY_IN_STORAGE, CUSTODY_REMOVED, CUSTODY_ISSUED, CUSTODY_DISPOSED)

# Custody event types.
EVENT_RECEIPT = "receipt"
EVENT_STORAGE = "storage"
EVENT_REMOVAL = "removal"
EVENT_RETURN = "return"
EVENT_THAW = "thaw"
EVENT_DISPOSAL = "disposal"
EVENT_TYPES = (EVENT_RECEIPT, EVENT_STORAGE, EVENT_REMOVAL, EVENT_RETURN, EVENT_THAW, EVENT_DISPOSAL)

# Maternal infectious-disease markers (21 CFR 1271.85): column suffix -> label.
MARKERS: dict[str, str] = {
    "hiv_ab": "HIV-1/2 antibody",
    "hiv_nat": "HIV-1 NAT",
    "hbsag": "HBsAg",
    "anti_hbc": "Anti-HBc",
    "hcv_ab": "HCV antibody",
    "hcv_nat": "HCV NAT",
    "syphilis": "T. pallidum",
    "htlv": "HTLV-I/II antibody",
    "cmv": "CMV",
}
NON_REACTIVE = "non_reactive"
REACTIVE = "reactive"
NOT_DONE = "not_done"
MARKER_RESULTS = {NON_REACTIVE: "Non-reactive", REACTIVE: "Reactive", NOT_DONE: "Not done"}

ELIGIBLE = "eligible"
INELIGIBLE = "ineligible"
INCOMPLETE = "incomplete"

ABO_RH_TYPES = ("O+", "O-", "A+", "A-", "B+", "B-", "AB+", "AB-")

CRITERIA_DRAFT = "draft"
CRITERIA_APPROVED = "approved"

RELEASE_PENDING = "pending"
RELEASE_COMPLETED = "completed"


# A unit occupies a storage position exactly when its slot is set (custody moves clear all four columns
# together); the partial unique index over the position applies to those rows only.
OCCUPIES_POSITION = "storage_slot IS NOT NULL"
STORAGE_POSITION_INDEX = "uq_cord_blood_unit_storage_position"


def format_position(freezer: str | None, rack: str | None, box: str | None, slot: str | None) -> str:
    return f"{freezer} / rack {rack} / box {box} / slot {slot}"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CbuAcceptanceCriteria(Audited, Signable, Base):
    """One QA-approved version of the acceptance criteria for incoming cord blood units."""

    __tablename__ = "cbu_acceptance_criteria"
    __unsigned_fields__ = frozenset({"status", "approved_at", "approved_by"})
    __table_args__ = (
        CheckConstraint(_in("status", (CRITERIA_DRAFT, CRITERIA_APPROVED)), name="status_known"),
        CheckConstraint("min_tnc_cells > 0 AND min_cd34_cells > 0", name="counts_positive"),
        CheckConstraint("min_viability_percent >= 0 AND min_viability_percent <= 100", name="viability_percent"),
        CheckConstraint("max_collection_age_days > 0", name="age_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(20), default=CRITERIA_DRAFT)
    min_tnc_cells: Mapped[float] = mapped_column(Float)
    min_cd34_cells: Mapped[float] = mapped_column(Float)
    min_viability_percent: Mapped[float] = mapped_column(Float)
    max_shipper_temperature_c: Mapped[float] = mapped_column(Float)
    max_collection_age_days: Mapped[int] = mapped_column(Integer)
    required_markers: Mapped[str] = mapped_column(Text)  # comma-separated keys of MARKERS
    change_description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    approved_at: Mapped[datetime | None] = mapped_column(index=True)  # in force from this moment
    approved_by: Mapped[str | None] = mapped_column(String(80))

    @property
    def required_marker_list(self) -> list[str]:
        return [m for m in self.required_markers.split(",") if m]


class CordBloodUnit(Audited, Signable, Base):
    """A cryopreserved cord blood unit received from a bank: the first link of the chain of identity."""

    __tablename__ = "cord_blood_unit"
    # Workflow and location change as the unit moves; the received data (what QA signs) does not.
    __unsigned_fields__ = frozenset({
        "status", "custody_state", "storage_freezer", "storage_rack", "storage_box", "storage_slot",
        "batch_lot_number", "exceptional_release", "updated_at",
    })
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status_known"),
        CheckConstraint(_in("custody_state", CUSTODY_STATES), name="custody_state_known"),
        CheckConstraint(_in("eligibility", (ELIGIBLE, INELIGIBLE, INCOMPLETE)), name="eligibility_known"),
        CheckConstraint("length(din) = 13", name="din_length"),
        CheckConstraint("volume_ml > 0 AND tnc_cells > 0 AND cd34_cells > 0", name="amounts_positive"),
        CheckConstraint("viability_percent >= 0 AND viability_percent <= 100", name="viability_percent"),
        CheckConstraint(f"status <> '{STATUS_ACCEPTED}' OR eligibility = '{ELIGIBLE}' OR exceptional_release",
                        name="ineligible_needs_exceptional_release"),
        CheckConstraint(f"custody_state <> '{CUSTODY_ISSUED}' OR batch_lot_number IS NOT NULL",
                        name="issued_has_batch"),
        *[CheckConstraint(_in(f"marker_{key}", tuple(MARKER_RESULTS)), name=f"marker_{key}_known")
          for key in MARKERS],
        # Backstop for the check in operations: two writers that both found the slot free cannot both
        # store a unit there; the second flush fails and the request is refused with nothing saved.
        Index(STORAGE_POSITION_INDEX, "storage_freezer", "storage_rack", "storage_box", "storage_slot",
              unique=True, sqlite_where=text(OCCUPIES_POSITION), postgresql_where=text(OCCUPIES_POSITION)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    din: Mapped[str] = mapped_column(String(13), unique=True)
    product_code: Mapped[str] = mapped_column(String(8))
    source_bank: Mapped[str] = mapped_column(String(200), index=True)
    collection_date: Mapped[date] = mapped_column(Date)
    volume_ml: Mapped[float] = mapped_column(Float)
    tnc_cells: Mapped[float] = mapped_column(Float)
    cd34_cells: Mapped[float] = mapped_column(Float)
    viability_percent: Mapped[float] = mapped_column(Float)
    abo_rh: Mapped[str] = mapped_column(String(3))
    hla_a: Mapped[str] = mapped_column(String(60))
    hla_b: Mapped[str] = mapped_column(String(60))
    hla_drb1: Mapped[str] = mapped_column(String(60))
    marker_hiv_ab: Mapped[str] = mapped_column(String(12))
    marker_hiv_nat: Mapped[str] = mapped_column(String(12))
    marker_hbsag: Mapped[str] = mapped_column(String(12))
    marker_anti_hbc: Mapped[str] = mapped_column(String(12))
    marker_hcv_ab: Mapped[str] = mapped_column(String(12))
    marker_hcv_nat: Mapped[str] = mapped_column(String(12))
    marker_syphilis: Mapped[str] = mapped_column(String(12))
    marker_htlv: Mapped[str] = mapped_column(String(12))
    marker_cmv: Mapped[str] = mapped_column(String(12))
    maternal_sample_date: Mapped[date] = mapped_column(Date)
    # Derived from the marker results at receipt, never entered.
    eligibility: Mapped[str] = mapped_column(String(12))
    eligibility_reasons: Mapped[str] = mapped_column(Text, default="")  # one reason per line
    shipper_temperature_c: Mapped[float] = mapped_column(Float)
    data_logger_reviewed: Mapped[bool] = mapped_column(Boolean)
    seal_intact: Mapped[bool] = mapped_column(Boolean)
    received_by: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(index=True)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime]
    criteria_id: Mapped[int] = mapped_column(ForeignKey("cbu_acceptance_criteria.id"), index=True)
    criteria_passed: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), default=STATUS_RECEIVED, index=True)
    custody_state: Mapped[str] = mapped_column(String(20), default=CUSTODY_IN_STORAGE, index=True)
    # Freezer as an equipment asset code: the equipment registry is a separate package.
    storage_freezer: Mapped[str | None] = mapped_column(String(40))
    storage_rack: Mapped[str | None] = mapped_column(String(20))
    storage_box: Mapped[str | None] = mapped_column(String(20))
    storage_slot: Mapped[str | None] = mapped_column(String(20))
    batch_lot_number: Mapped[str | None] = mapped_column(String(40), index=True)
    # Permanent: once set it is never cleared and follows the unit into every later record and label.
    exceptional_release: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]

    criteria: Mapped[CbuAcceptanceCriteria] = relationship(lazy="joined")
    criterion_results: Mapped[list["CbuCriterionResult"]] = relationship(
        back_populates="unit", order_by="CbuCriterionResult.id", lazy="selectin")
    custody_events: Mapped[list["CbuCustodyEvent"]] = relationship(
        back_populates="unit", order_by="CbuCustodyEvent.id", lazy="selectin")
    exceptional_releases: Mapped[list["CbuExceptionalRelease"]] = relationship(
        back_populates="unit", order_by="CbuExceptionalRelease.id", lazy="selectin")

    @property
    def storage_position(self) -> str | None:
        if not self.storage_freezer:
            return None
        return format_position(self.storage_freezer, self.storage_rack, self.storage_box, self.storage_slot)

    @property
    def eligibility_reason_list(self) -> list[str]:
        return [line for line in self.eligibility_reasons.splitlines() if line]

    def marker(self, key: str) -> str:
        return getattr(self, f"marker_{key}")

    @property
    def in_storage(self) -> bool:
        return self.custody_state == CUSTODY_IN_STORAGE

    @property
    def pending_exceptional_release(self) -> "CbuExceptionalRelease | None":
        return next((r for r in self.exceptional_releases if r.status == RELEASE_PENDING), None)


class CbuCriterionResult(Audited, Base):
    """The evaluation of one acceptance criterion for one unit, against the version in force at receipt."""

    __tablename__ = "cbu_criterion_result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("cord_blood_unit.id"), index=True)
    criteria_id: Mapped[int] = mapped_column(ForeignKey("cbu_acceptance_criteria.id"))
    criterion: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120))
    requirement: Mapped[str] = mapped_column(String(200))
    actual: Mapped[str] = mapped_column(String(200))
    passed: Mapped[bool] = mapped_column(Boolean)

    unit: Mapped[CordBloodUnit] = relationship(back_populates="criterion_results")


class CbuCustodyEvent(Audited, Base):
    """One movement of a unit (chain of custody): who, when, from where, to where. Append-only."""

    __tablename__ = "cbu_custody_event"
    __table_args__ = (CheckConstraint(_in("event_type", EVENT_TYPES), name="event_type_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("cord_blood_unit.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    performed_by: Mapped[str] = mapped_column(String(80))
    from_location: Mapped[str] = mapped_column(String(200))
    to_location: Mapped[str] = mapped_column(String(200))
    batch_lot_number: Mapped[str | None] = mapped_column(String(40))
    comment: Mapped[str | None] = mapped_column(Text)

    unit: Mapped[CordBloodUnit] = relationship(back_populates="custody_events")


class CbuExceptionalRelease(Audited, Signable, Base):
    """A documented exceptional release of a unit that is ineligible or outside the criteria.

    The first QA signs the justification ("approved"); a second, different QA then accepts the unit.
    """

    __tablename__ = "cbu_exceptional_release"
    __unsigned_fields__ = frozenset({"status", "completed_at", "completed_by"})
    __table_args__ = (CheckConstraint(_in("status", (RELEASE_PENDING, RELEASE_COMPLETED)), name="status_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("cord_blood_unit.id"), index=True)
    justification: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=RELEASE_PENDING)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(80))

    unit: Mapped[CordBloodUnit] = relationship(back_populates="exceptional_releases")
