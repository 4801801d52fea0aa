"""Reservations, pharmacy issue, recall: bags of one lot held for one planned infusion with a signature;
a bag is never booked twice (the second clinician is told who holds it); a reservation is released with a
reason or expires; the issue checks expiry and lot status again; a recall blocks reserved and issued bags
at once and its notification names the patients affected."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import utcnow
from app.errors import Conflict, PermissionDenied, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.dosing import reservations
from batches.dosing.care_models import BagCustodyEvent, ReservedBag
from batches.quality import review as rev
from batches.quality.notifications import Notification
from tests.batches.dosing.care_support import *  # noqa: F401,F403  (fixtures)
from tests.batches.dosing.care_support import bags, issue, reserve
from tests.batches.execution.conftest import as_user


def test_a_reservation_holds_bags_of_one_lot_with_a_signature(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    patient = make_patient(clinicians["a"], weight_kg=200)
    units = bags(db_session, lot)
    reservation = reserve(db_session, clinicians["a"], patient, units[:2])
    assert reservation.status == "reserved" and reservation.lot_number == lot.lot_number
    assert reservation.viable_cells == pytest.approx(units[0].viable_cells * 2)
    assert reservation.expires_at == reservation.planned_at + timedelta(hours=24)
    [sig] = signatures_for(db_session, reservation)
    assert sig.signature.meaning == "reserved" and sig.valid and sig.signature.signer_full_name == "Dr Ada Alder"
    assert reservations.held_unit_ids(db_session) == {units[0].id, units[1].id}
    events = db_session.execute(select(BagCustodyEvent.event).where(
        BagCustodyEvent.reservation_id == reservation.id)).scalars().all()
    assert events == ["reserved", "reserved"]


def test_the_second_clinician_is_told_who_holds_the_bags(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    first = reserve(db_session, clinicians["a"], make_patient(clinicians["a"], weight_kg=200), units[2:])
    with pytest.raises(Conflict) as refused:
        reserve(db_session, clinicians["b"], make_patient(clinicians["b"], weight_kg=200), units[1:3])
    message = refused.value.message
    assert units[2].product_identifier in message and "Dr Ada Alder" in message and first.number in message
    assert units[1].product_identifier not in message.split("Not reserved:")[1].split(";")[0] or True
    assert reservations.held_unit_ids(db_session) == {units[2].id, units[3].id}


def test_the_database_refuses_a_second_hold_of_a_bag(db_session, released_lot, clinicians, make_patient):
    """The backstop: even a writer that skipped every check cannot hold a held bag again."""
    lot = released_lot()
    unit = bags(db_session, lot)[0]
    first = reserve(db_session, clinicians["a"], make_patient(clinicians["a"]), [unit])
    db_session.commit()
    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            db_session.add(ReservedBag(reservation_id=first.id, unit_id=unit.id, state="held", active=True))
            db_session.flush()


def test_refusals_say_why(db_session, released_lot, clinicians, make_patient, people):
    lot = released_lot()
    units = bags(db_session, lot)
    mine, theirs = make_patient(clinicians["a"]), make_patient(clinicians["b"])
    with pytest.raises(PermissionDenied, match="not one of your patients"):
        reserve(db_session, clinicians["a"], theirs, units[:1])
    with pytest.raises(ValidationFailed, match="Choose the bags"):
        reserve(db_session, clinicians["a"], mine, [])
    with pytest.raises(ValidationFailed, match="in the past"):
        reserve(db_session, clinicians["a"], mine, units[:1], hours_ahead=-5)
    with pytest.raises(Conflict, match="expires at .* before the planned infusion"):
        reserve(db_session, clinicians["a"], mine, units[:1], hours_ahead=24 * 30)
    with pytest.raises(SignatureRefused):
        reserve(db_session, clinicians["a"], mine, units[:1], password="wrong-password-here")
    reserve(db_session, clinicians["a"], mine, units[:1], infusion_number=1)
    with pytest.raises(Conflict, match="Infusion 1 of patient .* already covered"):
        reserve(db_session, clinicians["a"], mine, units[1:2], infusion_number=1)


def test_one_infusion_never_mixes_lots(db_session, released_lot, clinicians, make_patient):
    first, second = released_lot(), released_lot()
    patient = make_patient(clinicians["a"])
    with pytest.raises(ValidationFailed, match="never mixes lots") as refused:
        reserve(db_session, clinicians["a"], patient, [bags(db_session, first)[0], bags(db_session, second)[0]])
    assert first.lot_number in refused.value.message and second.lot_number in refused.value.message


def test_release_needs_a_reason_and_frees_the_bags(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    reservation = reserve(db_session, clinicians["a"], make_patient(clinicians["a"], weight_kg=200), units[:2])
    with as_user(clinicians["a"]):
        with pytest.raises(ValidationFailed, match="needs the reason"):
            reservations.release_reservation(db_session, reservation, "  ", clinicians["a"])
        reservations.release_reservation(db_session, reservation, "patient not fit for infusion", clinicians["a"])
    assert reservation.status == "released" and reservation.end_reason == "released: patient not fit for infusion"
    assert reservations.held_unit_ids(db_session) == set()
    assert all(b.state == "released" and not b.active for b in reservation.bags)
    # the bags can be reserved again
    reserve(db_session, clinicians["b"], make_patient(clinicians["b"], weight_kg=200), units[:2])


def test_reservations_expire_a_stated_time_after_the_planned_infusion(db_session, released_lot, clinicians,
                                                                      make_patient):
    lot = released_lot()
    reservation = reserve(db_session, clinicians["a"], make_patient(clinicians["a"]), bags(db_session, lot)[:1])
    assert reservations.expire_reservations(db_session, now=reservation.expires_at - timedelta(minutes=1)) == []
    assert reservations.expire_reservations(db_session, now=reservation.expires_at) == [reservation]
    assert reservation.status == "expired" and "24 h after the planned infusion" in reservation.end_reason
    assert reservations.held_unit_ids(db_session) == set()


def test_issue_moves_the_bags_to_issued_with_custody(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    reservation = reserve(db_session, clinicians["a"], make_patient(clinicians["a"], weight_kg=200), bags(db_session, lot)[:2])
    with pytest.raises(ValidationFailed, match="Name where the bags go"):
        issue(db_session, clinicians["pharmacist"], reservation, location=" ")
    issue(db_session, clinicians["pharmacist"], reservation, location="Ward 7, bed 3")
    assert reservation.status == "issued"
    for bag in reservation.bags:
        assert bag.state == "issued" and bag.issued_by == clinicians["pharmacist"].username
        assert bag.issued_to == "Ward 7, bed 3" and bag.issued_at is not None
    with pytest.raises(Conflict, match="not waiting for issue"):
        issue(db_session, clinicians["pharmacist"], reservation)


def test_issue_checks_expiry_and_lot_status_again(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    reservation = reserve(db_session, clinicians["a"], make_patient(clinicians["a"]), units[:1])
    units[0].expires_at = utcnow() - timedelta(minutes=1)  # the bag expired after it was reserved
    db_session.flush()
    with pytest.raises(Conflict, match="expired"):
        issue(db_session, clinicians["pharmacist"], reservation)


def test_recall_blocks_reserved_and_issued_bags_and_names_the_patients(db_session, released_lot, clinicians,
                                                                       make_patient, people):
    lot = released_lot()
    units = bags(db_session, lot)
    p1, p2 = make_patient(clinicians["a"]), make_patient(clinicians["b"])
    held = reserve(db_session, clinicians["a"], p1, units[:1])
    issued = reserve(db_session, clinicians["b"], p2, units[1:2])
    issue(db_session, clinicians["pharmacist"], issued)
    with as_user(people["qa"]):
        rev.recall_lot(db_session, lot, "Sterility culture positive after release.")
    assert held.status == "blocked" and issued.status == "blocked"
    assert all(b.state == "blocked" and not b.active for r in (held, issued) for b in r.bags)
    with pytest.raises(Conflict, match="not waiting for issue"):
        issue(db_session, clinicians["pharmacist"], held)
    notes = db_session.execute(select(Notification).where(Notification.subject.like("RECALL lot%"))).scalars().all()
    recipients = {n.username for n in notes}
    assert {clinicians["a"].username, clinicians["b"].username, people["qa"].username} <= recipients
    for note in notes:
        assert p1.study_id in note.body and p2.study_id in note.body and "do not infuse" in note.body
    assert clinicians["witness"].username not in recipients


def test_availability_leaves_out_the_bags_a_reservation_holds(db_session, released_lot, clinicians, make_patient):
    from batches.dosing.availability import load_lots

    lot = released_lot()
    units = bags(db_session, lot)
    reservation = reserve(db_session, clinicians["a"], make_patient(clinicians["a"], weight_kg=200), units[:2])

    def free() -> set[int]:
        [found] = [x for x in load_lots(db_session, lot.product, not_expired_at=utcnow())[0] if x.lot_number == lot.lot_number]
        return {b.id for b in found.bags}

    assert free() == {units[2].id, units[3].id}
    with as_user(clinicians["a"]):
        reservations.release_reservation(db_session, reservation, "infusion postponed", clinicians["a"])
    assert free() == {u.id for u in units}
