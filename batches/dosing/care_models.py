"""Models of dose reservation, pharmacy issue, bedside identity check, infusion and trial follow-up.

A reservation holds the bags of one lot for one planned infusion of a patient; a bag is held by at most
one live reservation (a partial unique index on ``reserved_bag.unit_id`` where ``active``), so two
clinicians can never book the same bag, whatever the timing. The bag's own disposition status stays with
batches.quality; where it is in the dosing path (held, issued, infused) is kept here with its custody.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.audit import Audited
from app.db import Base, utcnow
from app.signatures import MEANINGS, Signable
from batches.quality.models import FinalProductUnit

MEANINGS.setdefault("reserved", "Reserved by")
MEANINGS.setdefault("administered", "Administered by")
MEANINGS.setdefault("witnessed", "Witnessed by")

RESERVATION_STATUSES = ("reserved", "issued", "infused", "released", "expired", "blocked")
LIVE_RESERVATION_STATUSES = ("reserved", "issued", "infused")
BAG_STATES = ("held", "issued", "infused", "released", "expired", "blocked")
CUSTODY_EVENTS = ("reserved", "issued", "bedside_check", "infused", "released", "expired", "blocked")
VISIT_KINDS = ("dlt_window", "visit", "response")
AE_RELATIONS = ("unrelated", "unlikely", "possible", "probable", "definite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


LIVE_RESERVATION = _in("status", LIVE_RESERVATION_STATUSES)


class DoseReservation(Signable, Audited, Base):
    """The bags of one lot held for one planned infusion of a patient, signed 'reserved' by the clinician."""

    __tablename__ = "dose_reservation"
    __table_args__ = (
        CheckConstraint(_in("status", RESERVATION_STATUSES), name="status"),
        CheckConstraint("infusion_number >= 1", name="infusion_number_positive"),
        CheckConstraint("status NOT IN ('released', 'expired', 'blocked') OR end_reason IS NOT NULL",
                        name="ended_has_reason"),
        # One live reservation per planned infusion of a patient.
        Index("uq_dose_reservation_live_infusion", "patient_id", "infusion_number", unique=True,
              sqlite_where=text(LIVE_RESERVATION), postgresql_where=text(LIVE_RESERVATION)),
    )
    __unsigned_fields__ = frozenset({"status", "ended_at", "ended_by", "end_reason"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    infusion_number: Mapped[int] = mapped_column(Integer)
    planned_at: Mapped[datetime]
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(40))
    product: Mapped[str] = mapped_column(String(80))
    viable_cells: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="reserved")
    reserved_at: Mapped[datetime] = mapped_column(default=utcnow)
    reserved_by: Mapped[str] = mapped_column(String(80))
    reserved_by_id: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(80))
    end_reason: Mapped[str | None] = mapped_column(Text)

    bags: Mapped[list["ReservedBag"]] = relationship(back_populates="reservation", order_by="ReservedBag.id",
                                                     lazy="selectin")

    @property
    def number(self) -> str:
        return f"R-{self.id:05d}"

    @property
    def status_label(self) -> str:
        return self.status.replace("_", " ")

    @property
    def live(self) -> bool:
        return self.status in LIVE_RESERVATION_STATUSES


class ReservedBag(Audited, Base):
    """One bag of a reservation and where it is in the dosing path: held, issued by the pharmacy, infused."""

    __tablename__ = "reserved_bag"
    __table_args__ = (
        CheckConstraint(_in("state", BAG_STATES), name="state"),
        CheckConstraint("active = (state IN ('held', 'issued', 'infused'))", name="active_matches_state"),
        CheckConstraint("state NOT IN ('issued', 'infused') OR issued_at IS NOT NULL", name="issued_has_custody"),
        # The database's own guard against a double booking: a bag is held by at most one live reservation.
        Index("uq_reserved_bag_active_unit", "unit_id", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reservation_id: Mapped[int] = mapped_column(ForeignKey("dose_reservation.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("final_product_unit.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="held")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    issued_at: Mapped[datetime | None]
    issued_by: Mapped[str | None] = mapped_column(String(80))
    issued_to: Mapped[str | None] = mapped_column(String(120))

    reservation: Mapped[DoseReservation] = relationship(back_populates="bags")
    unit: Mapped[FinalProductUnit] = relationship(lazy="joined")

    @property
    def state_label(self) -> str:
        return self.state.replace("_", " ")


class BagCustodyEvent(Audited, Base):
    """One step of a bag's custody after release: reserved, issued (who, when, where), checked at the
    bedside, infused, or taken out of the path (released, expired, blocked by recall)."""

    __tablename__ = "bag_custody_event"
    __table_args__ = (CheckConstraint(_in("event", CUSTODY_EVENTS), name="event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("final_product_unit.id"), index=True)
    reservation_id: Mapped[int] = mapped_column(ForeignKey("dose_reservation.id"), index=True)
    event: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    performed_by: Mapped[str] = mapped_column(String(80))
    location: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class Infusion(Signable, Audited, Base):
    """The infusion of a reservation's bags: times, volume, reaction, administered and witnessed by two
    different clinicians, each with an e-signature."""

    __tablename__ = "infusion"
    __table_args__ = (
        CheckConstraint("ended_at >= started_at", name="ends_after_start"),
        CheckConstraint("volume_ml > 0", name="volume_positive"),
        CheckConstraint("administered_by_id <> witnessed_by_id", name="two_people"),
        CheckConstraint("NOT reaction OR reaction_description IS NOT NULL", name="reaction_described"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reservation_id: Mapped[int] = mapped_column(ForeignKey("dose_reservation.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    infusion_number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    volume_ml: Mapped[float] = mapped_column(Float)
    reaction: Mapped[bool] = mapped_column(Boolean, default=False)
    reaction_description: Mapped[str | None] = mapped_column(Text)
    administered_by_id: Mapped[int] = mapped_column(Integer)
    administered_by: Mapped[str] = mapped_column(String(80))
    witnessed_by_id: Mapped[int] = mapped_column(Integer)
    witnessed_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    reservation: Mapped[DoseReservation] = relationship(lazy="joined")


class FollowUpVisit(Audited, Base):
    """One item of a patient's trial follow-up, made after the first infusion: the DLT/AE window, a visit
    or a response assessment, due on a date within a window, done when recorded."""

    __tablename__ = "follow_up_visit"
    __table_args__ = (
        CheckConstraint(_in("kind", VISIT_KINDS), name="kind"),
        CheckConstraint("opens_on <= due_on AND due_on <= closes_on", name="window_order"),
        CheckConstraint("done_on IS NULL OR done_by IS NOT NULL", name="done_has_who"),
        Index("uq_follow_up_visit_item", "patient_id", "kind", "week", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    week: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120))
    opens_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    closes_on: Mapped[date] = mapped_column(Date)
    done_on: Mapped[date | None] = mapped_column(Date)
    done_by: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str | None] = mapped_column(Text)


class AdverseEvent(Audited, Base):
    """An adverse event of a treated patient: CTCAE term and grade, relation to the product, seriousness."""

    __tablename__ = "adverse_event"
    __table_args__ = (
        CheckConstraint("ctcae_grade BETWEEN 1 AND 5", name="ctcae_grade"),
        CheckConstraint(_in("relation", AE_RELATIONS), name="relation"),
        CheckConstraint("NOT serious OR seriousness IS NOT NULL", name="serious_has_criterion"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    term: Mapped[str] = mapped_column(String(200))
    onset_on: Mapped[date] = mapped_column(Date)
    ctcae_grade: Mapped[int] = mapped_column(Integer)
    relation: Mapped[str] = mapped_column(String(20))
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    seriousness: Mapped[str | None] = mapped_column(String(200))
    dose_limiting: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(80))

    @property
    def related(self) -> bool:
        return self.relation in ("possible", "probable", "definite")
