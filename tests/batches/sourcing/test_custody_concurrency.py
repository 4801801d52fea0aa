"""Two tablets (or a tablet and a batch start) moving the same unit at the same moment, each with its own
database connection and transaction: the second move waits for the first, then sees what the first did
and is refused with a message; the chain of custody holds exactly one of the two moves.

Both tablets opened the unit page before either saved, so each holds a copy of the unit that says it is
where the page showed it; only the state read after the lock counts.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as, verify_chain
from app.cli import upgrade_database
from app.db import make_engine
from app.errors import Conflict
from batches.sourcing import operations
from batches.sourcing.models import CbuCustodyEvent, CordBloodUnit
from tests.batches.sourcing import standalone

Move = Callable[[Session, CordBloodUnit], Any]


@pytest.fixture(scope="module")
def store(backend: str, fresh_database_url: Callable[[str], str]) -> Iterator[Engine]:
    """A migrated database of its own with an operator, a QA person and approved criteria."""
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = make_engine(url)
    with Session(engine) as sess:
        standalone.seed(sess)
    yield engine
    engine.dispose()


_slots = iter(range(1, 10_000))


def new_unit(engine: Engine, intake_data: Callable[..., dict[str, Any]], *, accepted: bool = False,
             removed: bool = False) -> int:
    with Session(engine) as sess:
        unit = standalone.receive(sess, intake_data, storage_freezer="LN2-20", storage_rack="1", storage_box="A",
                                  storage_slot=str(next(_slots)))
        if accepted:
            standalone.accept(sess, unit)
        if removed:
            with acting_as(Actor(None, standalone.RECEIVER)):
                operations.remove_from_storage(sess, unit, destination="QC bench", reason="label check")
        sess.commit()
        return unit.id


def wait_until_blocked(engine: Engine, thread: threading.Thread) -> None:
    """Return once the second tablet's transaction is waiting for a lock the first one holds."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as watcher:
            for _ in range(200):
                waiting = watcher.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar_one()
                if waiting:
                    return
                watcher.rollback()
                time.sleep(0.02)
        raise AssertionError("the second move never waited for the first")
    time.sleep(0.3)  # SQLite: the second writer waits at BEGIN IMMEDIATE for the first to commit
    assert thread.is_alive(), "the second move did not wait for the first"


def race_sessions(engine: Engine, first: Callable[[Session], Any], second: Callable[[Session], Any],
                  prepare_second: Callable[[Session], Any] = lambda sess: None) -> BaseException | None:
    """Tablet A does `first` and holds its transaction open while tablet B tries `second`; then A commits.
    `prepare_second` runs on B before A starts (the page B shows). Returns what B raised (None if it went
    through)."""
    with Session(engine, expire_on_commit=False) as tablet_a, Session(engine, expire_on_commit=False) as tablet_b:
        prepared = prepare_second(tablet_b)
        tablet_b.commit()
        with acting_as(Actor(None, "tablet-a")):
            first(tablet_a)
        outcome: list[BaseException | None] = []

        def tablet_b_acts() -> None:
            try:
                with acting_as(Actor(None, "tablet-b")):
                    second(tablet_b) if prepared is None else second(tablet_b, prepared)
                tablet_b.commit()
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test below
                tablet_b.rollback()
                outcome.append(exc)

        thread = threading.Thread(target=tablet_b_acts)
        thread.start()
        try:
            wait_until_blocked(engine, thread)
        finally:
            tablet_a.commit()
            thread.join(timeout=60)
        assert not thread.is_alive()
        return outcome[0]


def race(engine: Engine, unit_id: int, first: Move, second: Move) -> BaseException | None:
    """Two tablets move the same unit, both from pages rendered before either saves."""
    return race_sessions(engine, lambda sess: first(sess, sess.get(CordBloodUnit, unit_id)), second,
                         prepare_second=lambda sess: sess.get(CordBloodUnit, unit_id))


def custody_of(engine: Engine, unit_id: int) -> tuple[tuple[str, str | None, str | None], list[tuple[str, str]]]:
    """(custody state, storage position, batch lot) of the unit as committed, and its custody events."""
    with Session(engine) as sess:
        unit = sess.get(CordBloodUnit, unit_id)
        state = (unit.custody_state, unit.storage_position, unit.batch_lot_number)
        events = sess.execute(select(CbuCustodyEvent.event_type, CbuCustodyEvent.performed_by)
                              .where(CbuCustodyEvent.unit_id == unit_id).order_by(CbuCustodyEvent.id)).all()
        assert verify_chain(sess).ok
    return state, [tuple(e) for e in events]


def remove(to: str) -> Move:
    return lambda sess, unit: operations.remove_from_storage(sess, unit, destination=to, reason="label check")


def put_back(slot: str) -> Move:
    return lambda sess, unit: operations.return_to_storage(sess, unit, freezer="LN2-21", rack="1", box="A", slot=slot)


def dispose(sess: Session, unit: CordBloodUnit) -> Any:
    return operations.dispose_unit(sess, unit, reason="bag cracked")


def start_batch(lot: str) -> Move:
    """What batch execution does: take the unit (locked) and record the thaw into the batch."""

    def move(sess: Session, unit: CordBloodUnit) -> Any:
        taken = operations.get_assignable_unit(sess, unit.id)
        return operations.assign_unit_to_batch(sess, taken, batch_lot_number=lot)

    return move


def test_two_removals_of_one_unit(store, intake_data):
    unit_id = new_unit(store, intake_data)
    refused = race(store, unit_id, remove("QC bench 1"), remove("QC bench 2"))
    assert isinstance(refused, Conflict) and "is not in storage, so it cannot be removed" in refused.message
    state, events = custody_of(store, unit_id)
    assert state == ("removed", None, None)
    assert events[2:] == [("removal", "tablet-a")]


def test_two_returns_of_one_unit_to_different_slots(store, intake_data):
    unit_id = new_unit(store, intake_data, removed=True)
    refused = race(store, unit_id, put_back("1"), put_back("2"))
    assert isinstance(refused, Conflict) and "is not out of storage, so it cannot be returned" in refused.message
    state, events = custody_of(store, unit_id)
    assert state == ("in_storage", "LN2-21 / rack 1 / box A / slot 1", None)
    assert events[3:] == [("return", "tablet-a")]


def test_a_disposal_while_a_batch_takes_the_unit(store, intake_data):
    unit_id = new_unit(store, intake_data, accepted=True)
    refused = race(store, unit_id, start_batch("NK-26-0001"), dispose)
    assert isinstance(refused, Conflict) and "has already left custody (issued)" in refused.message
    state, events = custody_of(store, unit_id)
    assert state == ("issued", None, "NK-26-0001")
    assert events[2:] == [("thaw", "tablet-a")]


def test_a_batch_cannot_take_a_unit_being_disposed(store, intake_data):
    unit_id = new_unit(store, intake_data, accepted=True)
    refused = race(store, unit_id, dispose, start_batch("NK-26-0002"))
    assert isinstance(refused, Conflict) and "was disposed of" in refused.message
    state, events = custody_of(store, unit_id)
    assert state == ("disposed", None, None)
    assert events[2:] == [("disposal", "tablet-a")]


def test_two_units_returned_to_the_same_free_slot(store, intake_data):
    """Different units, one position: the second is told which unit took the slot."""
    first_id = new_unit(store, intake_data, removed=True)
    second_id = new_unit(store, intake_data, removed=True)
    with Session(store) as sess:
        first_din = sess.get(CordBloodUnit, first_id).din
    refused = race_sessions(store, lambda sess: put_back("50")(sess, sess.get(CordBloodUnit, first_id)),
                            put_back("50"), prepare_second=lambda sess: sess.get(CordBloodUnit, second_id))
    assert isinstance(refused, Conflict) and f"already holds unit {first_din}" in refused.message
    state, events = custody_of(store, second_id)
    assert state == ("removed", None, None) and events[-1][0] == "removal"


def test_two_intakes_into_the_same_free_slot(store, intake_data):
    """Two receipts at once: the second is told which unit took the slot, not a generic refusal."""
    position = {"storage_freezer": "LN2-22", "storage_rack": "1", "storage_box": "A", "storage_slot": "1"}
    received: list[CordBloodUnit] = []
    refused = race_sessions(store, lambda sess: received.append(standalone.receive(sess, intake_data, **position)),
                            lambda sess: standalone.receive(sess, intake_data, **position))
    first = received[0]
    assert isinstance(refused, Conflict) and f"already holds unit {first.din}" in refused.message
    with Session(store) as sess:
        holders = sess.execute(select(CordBloodUnit.din).where(
            CordBloodUnit.storage_freezer == "LN2-22", CordBloodUnit.storage_slot == "1")).scalars().all()
    assert holders == [first.din]
