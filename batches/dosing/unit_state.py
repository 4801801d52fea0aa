"""The bag page's dosing line: the patient a bag is held for, issued to or infused in, shown as the
viewer may see it (a clinician sees another clinician's patient without the study ID), with a link to
the reservation or, for a patient the viewer may not see, to the chain of identity."""
from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.permissions import can
from batches.dosing.care_models import ReservedBag
from batches.dosing.models import Patient
from batches.dosing.operations import can_see_patient

STATE_WORDS = {"held": "Held for", "issued": "Issued to", "infused": "Infused in"}


def dosing_state_of_unit(sess: Session, unit: Any, user: Any) -> list[dict[str, Any]]:
    hold = sess.execute(select(ReservedBag).where(ReservedBag.unit_id == unit.id, ReservedBag.active.is_(True))
                        .order_by(ReservedBag.id.desc()).limit(1)).scalar_one_or_none()
    if hold is None or hold.state not in STATE_WORDS:
        return []
    reservation = hold.reservation
    patient = sess.get(Patient, reservation.patient_id)
    visible = user is not None and getattr(user, "is_authenticated", False) and can_see_patient(user, patient)
    who = f"patient {patient.study_id}" if visible else "a patient of another clinician"
    line: dict[str, Any] = {"text": f"{STATE_WORDS[hold.state]} {who}, infusion {reservation.infusion_number}",
                            "href": None, "link_text": None}
    if user is not None and can(user, "care.view"):
        if visible:
            line["href"] = url_for("care.reservation_view", reservation_id=reservation.id)
            line["link_text"] = "Reservation"
        else:
            line["href"] = url_for("care.chain_view", identifier=unit.product_identifier)
            line["link_text"] = "Chain of identity"
    return [line]
