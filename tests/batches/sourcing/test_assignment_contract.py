"""The contract batch execution relies on: assignable units, the reason a unit is refused, assignment."""
from __future__ import annotations

import pytest

from app import db
from app.errors import Conflict, NotFound, ValidationFailed
from batches.sourcing import operations
from batches.sourcing.models import CUSTODY_ISSUED, EVENT_THAW, CordBloodUnit
from tests.batches.sourcing.conftest import sign_as


def test_only_accepted_units_in_storage_are_assignable(db_session, make_unit, make_accepted_unit, qa_users):
    received = make_unit()
    quarantined = make_unit()
    operations.change_status(db_session, quarantined, "quarantine", reason="await review", **sign_as(qa_users[0]))
    accepted = make_accepted_unit()
    removed = make_accepted_unit()
    operations.remove_from_storage(db_session, removed, destination="QC lab", reason="label inspection")
    db_session.commit()

    assignable = operations.assignable_units(db_session)

    assert accepted in assignable
    assert received not in assignable and quarantined not in assignable and removed not in assignable


@pytest.mark.parametrize("state, expected", [
    ("received", "awaiting quarantine"),
    ("quarantine", "is in quarantine"),
    ("rejected", "was rejected"),
    ("removed", "not in storage"),
    ("disposed", "disposed"),
])
def test_get_assignable_unit_refuses_with_the_reason(db_session, make_unit, qa_users, state, expected):
    unit = make_unit()
    qa = qa_users[0]
    if state in ("quarantine", "rejected", "removed", "disposed"):
        operations.change_status(db_session, unit, "quarantine", reason="review", **sign_as(qa))
    if state == "rejected":
        operations.change_status(db_session, unit, "rejected", reason="bag damaged", **sign_as(qa))
    if state == "removed":
        operations.change_status(db_session, unit, "accepted", reason="ok", **sign_as(qa))
        operations.remove_from_storage(db_session, unit, destination="QC lab", reason="inspection")
    if state == "disposed":
        operations.dispose_unit(db_session, unit, reason="bag cracked")
    db_session.commit()

    with pytest.raises(Conflict) as refused:
        operations.get_assignable_unit(db_session, unit.id)

    assert expected in refused.value.message
    assert unit.din in refused.value.message


def test_get_assignable_unit_missing_is_not_found(db_session):
    with pytest.raises(NotFound):
        operations.get_assignable_unit(db_session, 987654321)


def test_assign_records_the_thaw_and_the_unit_cannot_be_assigned_again(db_session, make_accepted_unit):
    unit = make_accepted_unit()
    position = unit.storage_position

    assert operations.get_assignable_unit(db_session, unit.id) is unit
    operations.assign_unit_to_batch(db_session, unit, batch_lot_number="NK-2026-001")
    db_session.commit()

    unit = db.session.get(CordBloodUnit, unit.id)
    assert unit.custody_state == CUSTODY_ISSUED
    assert unit.batch_lot_number == "NK-2026-001"
    thaw = unit.custody_events[-1]
    assert thaw.event_type == EVENT_THAW
    assert thaw.from_location == position
    assert "NK-2026-001" in thaw.to_location
    assert thaw.performed_by == "test"
    assert unit not in operations.assignable_units(db_session)
    with pytest.raises(Conflict, match="already issued to batch NK-2026-001"):
        operations.assign_unit_to_batch(db_session, unit, batch_lot_number="NK-2026-002")
    with pytest.raises(Conflict, match="already issued"):
        operations.get_assignable_unit(db_session, unit.id)


def test_assign_needs_a_lot_number(db_session, make_accepted_unit):
    unit = make_accepted_unit()
    with pytest.raises(ValidationFailed):
        operations.assign_unit_to_batch(db_session, unit, batch_lot_number="  ")
    assert unit.custody_state == "in_storage"


def test_unit_exposes_the_fields_batches_need(make_accepted_unit):
    unit = make_accepted_unit(abo_rh="A-")
    assert len(unit.din) == 13
    assert unit.status == "accepted"
    assert unit.exceptional_release is False
    assert unit.product_code == "S1362V00"
    assert unit.abo_rh == "A-"
