"""Chain of custody: each movement is an event with who, when, from and to; refusals change nothing."""
from __future__ import annotations

import pytest

from app.audit import Actor, acting_as
from app.errors import Conflict, ReasonRequired, ValidationFailed
from batches.sourcing import operations


def test_removal_and_return_are_events_with_who_when_from_and_to(db_session, make_unit):
    unit = make_unit(storage_slot="5")
    position = unit.storage_position
    with acting_as(Actor(None, "olivia")):
        removal = operations.remove_from_storage(db_session, unit, destination="QC lab bench 2", reason="inspect label")
    assert (removal.event_type, removal.performed_by, removal.from_location, removal.to_location) == (
        "removal", "olivia", position, "QC lab bench 2")
    assert removal.occurred_at is not None
    assert unit.custody_state == "removed" and unit.storage_position is None
    with acting_as(Actor(None, "omar")):
        back = operations.return_to_storage(db_session, unit, freezer="LN2-03", rack="4", box="C", slot="12")
    assert (back.event_type, back.performed_by, back.from_location, back.to_location) == (
        "return", "omar", "QC lab bench 2", "LN2-03 / rack 4 / box C / slot 12")
    assert unit.in_storage and unit.storage_freezer == "LN2-03"
    assert [e.event_type for e in unit.custody_events] == ["receipt", "storage", "removal", "return"]


def test_disposal_ends_custody(db_session, make_unit):
    unit = make_unit()
    event = operations.dispose_unit(db_session, unit, reason="bag cracked on receipt")
    assert event.event_type == "disposal" and event.comment == "bag cracked on receipt"
    assert unit.custody_state == "disposed"
    with pytest.raises(Conflict, match="already left custody"):
        operations.dispose_unit(db_session, unit, reason="again")
    with pytest.raises(Conflict, match="not in storage"):
        operations.remove_from_storage(db_session, unit, destination="x", reason="y")


def test_movements_need_reasons_and_places(db_session, make_unit):
    unit = make_unit()
    with pytest.raises(ReasonRequired):
        operations.remove_from_storage(db_session, unit, destination="QC", reason=" ")
    with pytest.raises(ValidationFailed):
        operations.remove_from_storage(db_session, unit, destination="", reason="check")
    with pytest.raises(ReasonRequired):
        operations.dispose_unit(db_session, unit, reason="")
    assert unit.custody_state == "in_storage" and len(unit.custody_events) == 2


def test_return_needs_a_removed_unit_and_a_free_slot(db_session, make_unit):
    occupant = make_unit(storage_freezer="LN2-09", storage_rack="1", storage_box="1", storage_slot="1")
    unit = make_unit()
    with pytest.raises(Conflict, match="not out of storage"):
        operations.return_to_storage(db_session, unit, freezer="LN2-09", rack="1", box="1", slot="2")
    operations.remove_from_storage(db_session, unit, destination="bench", reason="check")
    with pytest.raises(Conflict, match=f"already holds unit {occupant.din}"):
        operations.return_to_storage(db_session, unit, freezer="LN2-09", rack="1", box="1", slot="1")
    assert unit.custody_state == "removed"


def test_every_movement_is_in_the_audit_trail_with_its_reason(db_session, make_unit):
    from app.audit import history_for

    unit = make_unit()
    operations.remove_from_storage(db_session, unit, destination="QC", reason="label check")
    entries = history_for(db_session, "cord_blood_unit", unit.id)
    assert entries[-1].action == "update" and entries[-1].reason == "label check"
    assert "custody_state" in dict((k, v) for k, *v in entries[-1].change_list)
