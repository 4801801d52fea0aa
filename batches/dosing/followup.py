"""Trial follow-up: after a patient's first infusion, the schedule of the protocol is made: the dose-limiting
toxicity and adverse event window (4 weeks), visits at 12, 24, 36 and 52 weeks, and response assessments
(4, 12, 24 and 52 weeks); each item is scheduled, due, overdue or done. Adverse events are recorded with
their CTCAE grade, relation to the product and seriousness. The worklist shows a clinician what is due or
overdue this week for their own patients. Operations flush and never commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from batches.dosing.care_models import AE_RELATIONS, AdverseEvent, FollowUpVisit, Infusion
from batches.dosing.models import Patient
from batches.dosing.reservations import check_patient_visible, visible_patient_ids

DLT_WINDOW_WEEKS = 4
VISIT_WEEKS = (12, 24, 36, 52)
RESPONSE_WEEKS = (4, 12, 24, 52)
VISIT_WINDOW_DAYS = 7  # a visit is due from a week before to a week after its target day
TERM_MAX = AdverseEvent.__table__.c.term.type.length


def site_today() -> date:
    from app.web import site_zone

    try:
        return utcnow().astimezone(site_zone()).date()
    except RuntimeError:  # outside an app context
        return utcnow().date()


def _local_date(moment: datetime) -> date:
    from app.web import site_zone

    try:
        return moment.astimezone(site_zone()).date()
    except RuntimeError:
        return moment.date()


def create_follow_up_schedule(sess: Session, patient: Patient, first_infusion_at: datetime) -> list[FollowUpVisit]:
    """The protocol's follow-up from the day of the first infusion (day 0); made once per patient."""
    existing = visits_of(sess, patient)
    if existing:
        return existing
    day0 = _local_date(first_infusion_at)
    items = [FollowUpVisit(patient_id=patient.id, kind="dlt_window", week=DLT_WINDOW_WEEKS,
                           label=f"DLT and adverse event window (weeks 0-{DLT_WINDOW_WEEKS})", opens_on=day0,
                           due_on=day0 + timedelta(weeks=DLT_WINDOW_WEEKS),
                           closes_on=day0 + timedelta(weeks=DLT_WINDOW_WEEKS, days=VISIT_WINDOW_DAYS))]
    window = timedelta(days=VISIT_WINDOW_DAYS)
    for week in VISIT_WEEKS:
        target = day0 + timedelta(weeks=week)
        items.append(FollowUpVisit(patient_id=patient.id, kind="visit", week=week, label=f"Week {week} visit",
                                   opens_on=target - window, due_on=target, closes_on=target + window))
    for week in RESPONSE_WEEKS:
        target = day0 + timedelta(weeks=week)
        items.append(FollowUpVisit(patient_id=patient.id, kind="response", week=week,
                                   label=f"Week {week} response assessment", opens_on=target - window,
                                   due_on=target, closes_on=target + window))
    with audit_reason(sess, f"follow-up schedule after the first infusion of {patient.study_id}"):
        sess.add_all(items)
        sess.flush()
    return sorted(items, key=lambda v: (v.due_on, v.kind))


def visits_of(sess: Session, patient: Patient) -> list[FollowUpVisit]:
    return list(sess.execute(select(FollowUpVisit).where(FollowUpVisit.patient_id == patient.id)
                             .order_by(FollowUpVisit.due_on, FollowUpVisit.kind)).scalars())


def visit_state(visit: FollowUpVisit, today: date | None = None) -> str:
    """done, overdue (past its window), due (inside its window), or scheduled (later)."""
    today = today or site_today()
    if visit.done_on is not None:
        return "done"
    if today > visit.closes_on:
        return "overdue"
    if today >= visit.opens_on:
        return "due"
    return "scheduled"


def get_visit(sess: Session, visit_id: int, user: Any) -> FollowUpVisit:
    visit = sess.get(FollowUpVisit, visit_id)
    if visit is None:
        raise NotFound(f"Follow-up item {visit_id} does not exist.")
    check_patient_visible(user, sess.get(Patient, visit.patient_id))
    return visit


def complete_visit(sess: Session, visit: FollowUpVisit, *, done_on: date | None, outcome: str,
                   current_user: Any) -> FollowUpVisit:
    """Record the visit or assessment as done on a day, with what was found."""
    check_patient_visible(current_user, sess.get(Patient, visit.patient_id))
    outcome = (outcome or "").strip()
    if visit.done_on is not None:
        raise Conflict(f"{visit.label} was already recorded as done on {visit.done_on.isoformat()}.")
    done_on = done_on or site_today()
    if done_on > site_today():
        raise ValidationFailed("A visit cannot be done in the future.", errors={"done_on": ["In the future."]})
    if not outcome:
        raise ValidationFailed("Record what was found (the outcome).", errors={"outcome": ["Required."]})
    if visit.kind == "dlt_window" and done_on < visit.due_on:
        raise ValidationFailed(f"The DLT window stays open until {visit.due_on.isoformat()}.",
                               errors={"done_on": ["Window still open."]})
    with audit_reason(sess, f"{visit.label} done"):
        visit.done_on = done_on
        visit.done_by = current_user.username
        visit.outcome = outcome
    sess.flush()
    return visit


@dataclass
class WorkItem:
    visit: FollowUpVisit
    patient: Patient
    state: str


def worklist(sess: Session, user: Any, today: date | None = None) -> list[WorkItem]:
    """What is due this week (Monday to Sunday) or overdue, for the patients the user may see."""
    today = today or site_today()
    week_end = today + timedelta(days=6 - today.weekday())
    stmt = (select(FollowUpVisit, Patient).join(Patient, Patient.id == FollowUpVisit.patient_id)
            .where(FollowUpVisit.done_on.is_(None), FollowUpVisit.opens_on <= week_end)
            .order_by(FollowUpVisit.due_on, Patient.study_id))
    ids = visible_patient_ids(sess, user)
    if ids is not None:
        stmt = stmt.where(FollowUpVisit.patient_id.in_(ids))
    items = [WorkItem(v, p, visit_state(v, today)) for v, p in sess.execute(stmt).all()]
    return [i for i in items if i.state in ("due", "overdue") or i.visit.opens_on <= week_end]


# --- adverse events -------------------------------------------------------------------------------

def adverse_events_of(sess: Session, patient: Patient) -> list[AdverseEvent]:
    return list(sess.execute(select(AdverseEvent).where(AdverseEvent.patient_id == patient.id)
                             .order_by(AdverseEvent.onset_on, AdverseEvent.id)).scalars())


def in_dlt_window(sess: Session, patient: Patient, onset: date) -> bool:
    window = sess.execute(select(FollowUpVisit).where(FollowUpVisit.patient_id == patient.id,
                                                      FollowUpVisit.kind == "dlt_window")).scalar_one_or_none()
    return window is not None and window.opens_on <= onset <= window.due_on


def record_adverse_event(sess: Session, patient: Patient, *, term: str, onset_on: date | None, ctcae_grade: int | None,
                         relation: str, serious: bool, seriousness: str | None, dose_limiting: bool = False,
                         description: str | None = None, current_user: Any) -> AdverseEvent:
    """An adverse event after the first infusion, with CTCAE grade 1-5, relation and seriousness."""
    check_patient_visible(current_user, patient)
    errors: dict[str, list[str]] = {}
    term = (term or "").strip()
    if not term:
        errors["term"] = ["The CTCAE term, e.g. Cytokine release syndrome."]
    elif len(term) > TERM_MAX:
        errors["term"] = [f"At most {TERM_MAX} characters."]
    if ctcae_grade not in (1, 2, 3, 4, 5):
        errors["ctcae_grade"] = ["CTCAE grade 1 to 5."]
    if relation not in AE_RELATIONS:
        errors["relation"] = ["Choose: " + ", ".join(AE_RELATIONS) + "."]
    if onset_on is None:
        errors["onset_on"] = ["The day of onset."]
    elif onset_on > site_today():
        errors["onset_on"] = ["The onset is in the future."]
    seriousness = (seriousness or "").strip() or None
    if serious and not seriousness:
        errors["seriousness"] = ["Which criterion makes it serious (death, life-threatening, hospitalisation ...)?"]
    if errors:
        raise ValidationFailed("Please correct the adverse event: " + " ".join(m for v in errors.values() for m in v),
                               errors=errors)
    first = sess.execute(select(Infusion.started_at).where(Infusion.patient_id == patient.id)
                         .order_by(Infusion.started_at).limit(1)).scalar_one_or_none()
    if first is None:
        raise Conflict(f"Patient {patient.study_id} has not been infused: adverse events are recorded after the first "
                       "infusion.")
    event = AdverseEvent(patient_id=patient.id, term=term, onset_on=onset_on, ctcae_grade=ctcae_grade,
                         relation=relation, serious=bool(serious), seriousness=seriousness if serious else None,
                         dose_limiting=bool(dose_limiting), description=(description or "").strip() or None,
                         recorded_at=utcnow(), recorded_by=current_actor().username)
    sess.add(event)
    sess.flush()
    return event
