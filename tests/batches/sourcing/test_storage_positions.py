"""One unit per storage position, guaranteed by the database as well as checked with a message in the code.

The friendly check names the occupying unit; the partial unique index is the backstop for writers that
both passed the check, and reaches the user as a 409 with nothing saved.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import db
from app.audit import AuditEntry
from app.cli import alembic_config, upgrade_database
from app.errors import Conflict
from batches.sourcing import operations
from batches.sourcing.models import STORAGE_POSITION_INDEX, CbuCustodyEvent, CordBloodUnit
from tests.batches.sourcing import standalone

POSITION = ("storage_freezer", "storage_rack", "storage_box", "storage_slot")


def counts() -> tuple[int, int, int]:
    return (db.session.execute(select(func.count()).select_from(CordBloodUnit)).scalar_one(),
            db.session.execute(select(func.count()).select_from(CbuCustodyEvent)).scalar_one(),
            db.session.execute(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.table_name == "cord_blood_unit")).scalar_one())


def is_position_index_violation(exc: IntegrityError) -> bool:
    """SQLite names the columns, PostgreSQL the index."""
    message = str(exc.orig)
    return STORAGE_POSITION_INDEX in message or "cord_blood_unit.storage_slot" in message


def without_friendly_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a write past the code check, as a concurrent writer that checked before the other committed would."""
    monkeypatch.setattr(operations, "_check_position_free", lambda *args, **kwargs: None)


def test_the_database_refuses_a_second_unit_in_an_occupied_position(db_session, make_unit):
    occupant = make_unit(storage_freezer="LN2-07", storage_rack="2", storage_box="B", storage_slot="4")
    other = make_unit(storage_freezer="LN2-07", storage_rack="2", storage_box="B", storage_slot="5")
    other.storage_slot = "4"  # straight to the model: no operation, no check in code
    with pytest.raises(IntegrityError) as refused:
        db_session.flush()
    assert is_position_index_violation(refused.value)
    db_session.rollback()
    assert db_session.get(CordBloodUnit, other.id).storage_position == "LN2-07 / rack 2 / box B / slot 5"
    assert db_session.get(CordBloodUnit, occupant.id).storage_position == "LN2-07 / rack 2 / box B / slot 4"


def test_the_same_slot_number_in_another_box_rack_or_freezer_is_a_different_position(db_session, make_unit):
    base = {"storage_freezer": "LN2-08", "storage_rack": "1", "storage_box": "A", "storage_slot": "1"}
    make_unit(**base)
    for column, other in (("storage_freezer", "LN2-09"), ("storage_rack", "2"), ("storage_box", "B")):
        unit = make_unit(**{**base, column: other})
        assert unit.in_storage and unit.storage_slot == "1"


def test_units_out_of_storage_hold_no_position_and_free_their_slot(db_session, make_unit):
    position = {"storage_freezer": "LN2-10", "storage_rack": "3", "storage_box": "C", "storage_slot": "7"}
    removed = make_unit(**position)
    operations.remove_from_storage(db_session, removed, destination="QC bench", reason="label check")
    db_session.commit()
    successor = make_unit(**position)  # the slot the removed unit left is free for the next one
    operations.remove_from_storage(db_session, successor, destination="QC bench", reason="label check")
    disposed = make_unit(**position)
    operations.dispose_unit(db_session, disposed, reason="bag cracked")
    db_session.commit()
    for unit in (removed, successor, disposed):
        assert all(getattr(db_session.get(CordBloodUnit, unit.id), column) is None for column in POSITION)
    operations.return_to_storage(db_session, removed, freezer="LN2-10", rack="3", box="C", slot="7")
    db_session.commit()
    with pytest.raises(Conflict, match=f"already holds unit {removed.din}"):
        operations.return_to_storage(db_session, successor, freezer="LN2-10", rack="3", box="C", slot="7")


def test_an_intake_past_the_check_is_a_409_on_the_tablet_with_nothing_saved(client, make_unit, make_user, login,
                                                                             intake_data, monkeypatch):
    occupant = make_unit(storage_freezer="LN2-11", storage_rack="1", storage_box="A", storage_slot="1")
    operator = make_user("operator")
    login(operator)
    without_friendly_check(monkeypatch)
    before = counts()
    response = client.post("/sourcing/units/new", data=intake_data(
        received_by=operator.username, storage_freezer="LN2-11", storage_rack="1", storage_box="A",
        storage_slot="1"))
    assert response.status_code == 409
    assert "nothing of yours was saved" in response.get_data(as_text=True)
    assert counts() == before
    assert db.session.get(CordBloodUnit, occupant.id).storage_slot == "1"


def test_a_return_past_the_check_is_a_409_in_the_api_with_nothing_saved(client, api_headers, make_unit, make_user,
                                                                       monkeypatch):
    make_unit(storage_freezer="LN2-12", storage_rack="1", storage_box="A", storage_slot="1")
    unit = make_unit(storage_freezer="LN2-12", storage_rack="1", storage_box="A", storage_slot="2")
    operator = make_user("operator")
    headers = api_headers(operator)
    url = f"/api/v1/cord-blood-units/{unit.id}/custody-events"
    assert client.post(url, json={"action": "remove", "destination": "QC", "reason": "check"},
                       headers=headers).status_code == 201
    without_friendly_check(monkeypatch)
    before = counts()
    response = client.post(url, json={"action": "return", "storage_freezer": "LN2-12", "storage_rack": "1",
                                      "storage_box": "A", "storage_slot": "1"}, headers=headers)
    assert response.status_code == 409
    assert "nothing of yours was saved" in response.get_json()["message"]
    assert counts() == before
    assert db.session.get(CordBloodUnit, unit.id).custody_state == "removed"


def test_an_occupied_position_still_gets_the_message_naming_the_unit(client, make_unit, make_user, login,
                                                                     intake_data):
    occupant = make_unit(storage_freezer="LN2-13", storage_rack="1", storage_box="A", storage_slot="1")
    operator = make_user("operator")
    login(operator)
    before = counts()
    response = client.post("/sourcing/units/new", data=intake_data(
        received_by=operator.username, storage_freezer="LN2-13", storage_rack="1", storage_box="A",
        storage_slot="1"))
    assert response.status_code == 409
    assert f"already holds unit {occupant.din}" in response.get_data(as_text=True)
    assert counts() == before


def test_the_position_index_is_unique_and_partial(db_session, backend):
    indexes = {ix["name"]: ix for ix in inspect(db_session.connection()).get_indexes("cord_blood_unit")}
    index = indexes[STORAGE_POSITION_INDEX]
    assert index["unique"] and index["column_names"] == list(POSITION)
    if backend == "postgresql":
        definition = db_session.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                        {"n": STORAGE_POSITION_INDEX}).scalar_one()
    else:
        definition = db_session.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                                        {"n": STORAGE_POSITION_INDEX}).scalar_one()
    assert "storage_slot IS NOT NULL" in definition


# --- upgrading a database whose units already share a position ---------------------------------------

def _receive_two_units_then_put_both_in_one_slot(url: str, intake_data: Callable[..., dict[str, Any]]) -> list[str]:
    """Units recorded before the rule existed, two of them (wrongly) in the same position."""
    engine = db.make_engine(url)
    try:
        with Session(engine) as sess:
            standalone.seed(sess)
            units = [standalone.receive(sess, intake_data, storage_freezer="LN2-01", storage_rack="1",
                                        storage_box="A", storage_slot=slot) for slot in ("1", "2", "3")]
            sess.execute(text("UPDATE cord_blood_unit SET storage_slot = '1' WHERE id = :id"), {"id": units[1].id})
            sess.commit()
            return [unit.din for unit in units]
    finally:
        engine.dispose()


def _revision_and_index(url: str) -> tuple[str, bool]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            names = {ix["name"] for ix in inspect(connection).get_indexes("cord_blood_unit")}
    finally:
        engine.dispose()
    return revision, STORAGE_POSITION_INDEX in names


def test_the_upgrade_stops_and_names_units_that_share_a_position(backend, fresh_database_url, intake_data):
    url = fresh_database_url(backend)
    upgrade_database(url, "0004")
    first, second, third = _receive_two_units_then_put_both_in_one_slot(url, intake_data)
    engine = db.make_engine(url)
    try:  # on our own connection, so that the failed upgrade leaves no pooled connection behind
        with engine.connect() as connection, pytest.raises(RuntimeError) as stopped:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0005")
    finally:
        engine.dispose()
    message = str(stopped.value)
    assert "LN2-01 / rack 1 / box A / slot 1" in message and first in message and second in message
    assert third not in message and "Nothing was changed" in message
    assert _revision_and_index(url) == ("0004", False)
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:  # the storage records are corrected, then the upgrade runs
            connection.execute(text("UPDATE cord_blood_unit SET storage_slot = '2' WHERE din = :din"), {"din": second})
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "0005")
    assert _revision_and_index(url) == ("0005", True)
    command.downgrade(alembic_config(url), "0004")
    assert _revision_and_index(url) == ("0004", False)
