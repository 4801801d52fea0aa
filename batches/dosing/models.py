"""Models of batches.dosing: pseudonymous patients (no full name anywhere, 21 CFR 1271.290), their dated
weights, and the dosing regimens, versioned and QA-approved like release specifications."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited
from app.db import Base, utcnow
from app.signatures import Signable

PROTOCOLS = ("MsNK", "NKG2D-CAR-NK")
REGIMEN_STATUSES = ("draft", "in_review", "approved", "superseded")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Patient(Audited, Base):
    """A trial subject, pseudonymous: study subject ID, hospital ID (carried by the wristband barcode),
    initials and date of birth; the treating clinician sees the patient."""

    __tablename__ = "patient"
    __table_args__ = (CheckConstraint(_in("protocol", PROTOCOLS), name="protocol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(40), unique=True)
    hospital_id: Mapped[str] = mapped_column(String(40), unique=True)
    initials: Mapped[str] = mapped_column(String(5))
    date_of_birth: Mapped[date] = mapped_column(Date)
    treating_clinician_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(20))
    consent_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))

    weights: Mapped[list["PatientWeight"]] = relationship(
        back_populates="patient", order_by="PatientWeight.measured_on.desc()")


class PatientWeight(Audited, Base):
    """One weight measurement, with the day it was measured and who recorded it."""

    __tablename__ = "patient_weight"
    __table_args__ = (CheckConstraint("weight_kg > 0", name="weight_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    weight_kg: Mapped[float] = mapped_column(Float)
    measured_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="weights")


class DosingRegimen(Signable, Audited, Base):
    """One version of a protocol's dosing regimen; approved versions never change. Dose per infusion in
    viable cells per kg, number of infusions and interval, tolerance on the delivered dose, per-kg limits
    per dose, and for MsNK the longest time from the end of MPB-sia1 engineering to infusion."""

    __tablename__ = "dosing_regimen"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(_in("status", REGIMEN_STATUSES), name="status"),
        CheckConstraint(_in("protocol", PROTOCOLS), name="protocol"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("dose_per_kg > 0", name="dose_positive"),
        CheckConstraint("infusions >= 1", name="infusions_positive"),
        CheckConstraint("interval_days >= 0", name="interval_not_negative"),
        CheckConstraint("tolerance_minus_pct >= 0 AND tolerance_minus_pct < 100", name="tolerance_minus"),
        CheckConstraint("tolerance_plus_pct >= 0", name="tolerance_plus"),
        CheckConstraint("ligand_window_hours IS NULL OR ligand_window_hours > 0", name="ligand_window_positive"),
    )
    __unsigned_fields__ = frozenset({"status", "submitted_at", "approved_at", "approved_by", "approval_note",
                                     "superseded_at"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    dose_per_kg: Mapped[float] = mapped_column(Float)  # viable cells per kg per infusion
    infusions: Mapped[int] = mapped_column(Integer)
    interval_days: Mapped[float] = mapped_column(Float)
    tolerance_minus_pct: Mapped[float] = mapped_column(Float)
    tolerance_plus_pct: Mapped[float] = mapped_column(Float)
    max_cd3_per_kg: Mapped[float | None] = mapped_column(Float)  # residual CD3+ cells per kg per dose
    max_endotoxin_eu_per_kg: Mapped[float | None] = mapped_column(Float)  # EU per kg per dose
    ligand_window_hours: Mapped[float | None] = mapped_column(Float)  # MsNK: end of engineering -> infusion
    ligand_window_source: Mapped[str | None] = mapped_column(Text)
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
    def label(self) -> str:
        return f"{self.code} v{self.version}"
