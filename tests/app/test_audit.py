"""Audit trail: capture of insert/update/delete, append-only triggers, hash chain verification."""
from __future__ import annotations

import contextlib
import json
import threading
from typing import Iterator

import pytest
from sqlalchemy import ForeignKey, Integer, MetaData, String, event, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app import db
from app.audit import (
    GENESIS_HASH,
    Actor,
    AuditEntry,
    Audited,
    acting_as,
    audit_reason,
    history_for,
    record_event,
    verify_chain,
    void_record,
)
from app.cli import upgrade_database
from app.db import NAMING_CONVENTION
from app.errors import Conflict, ReasonRequired, SignatureRefused
from app.users import User, authenticate, create_user, set_roles
from tests.app.sample import SampleRecord
from tests.conftest import PASSWORD


@pytest.fixture()
def sample_table(db_session):
    SampleRecord.__table__.create(db_session.connection())
    db_session.commit()
    return SampleRecord


def changes(entry: AuditEntry) -> dict:
    return {key: (old, new) for key, old, new in entry.change_list}


def test_insert_is_audited_with_new_values_and_secret_redacted(db_session, make_user):
    with acting_as(Actor(7, "admin-7")):
        user = make_user("operator", username="ivy", full_name="Ivy Insert")
    [entry] = [e for e in history_for(db_session, "user_account", user.id) if e.action == "insert"]
    assert entry.actor_username == "admin-7" and entry.actor_id == 7
    values = changes(entry)
    assert values["username"] == (None, "ivy")
    assert values["full_name"] == (None, "Ivy Insert")
    assert values["password_hash"] == (None, "<redacted>")
    assert entry.occurred_at.tzinfo is not None


def test_update_is_audited_with_old_and_new_values_and_reason(db_session, make_user):
    user = make_user("operator", full_name="Before Name")
    with audit_reason(db_session, "name corrected after marriage"):
        user.full_name = "After Name"
    db_session.commit()
    entry = history_for(db_session, "user_account", user.id)[-1]
    assert entry.action == "update"
    assert changes(entry) == {"full_name": ("Before Name", "After Name")}
    assert entry.reason == "name corrected after marriage"


def test_update_of_an_attribute_never_loaded_still_records_the_old_value(db_session, make_user):
    user = make_user("operator", full_name="Stored Name")
    db_session.expire(user, ["full_name"])
    user.full_name = "New Name"
    db_session.commit()
    entry = history_for(db_session, "user_account", user.id)[-1]
    assert changes(entry)["full_name"] == ("Stored Name", "New Name")


def test_delete_is_audited_with_old_values(db_session, make_user):
    user = make_user("operator", "qa")
    qa_link = next(r for r in user.roles if r.role == "qa")
    admin = make_user("admin")
    set_roles(db_session, user, ["operator"], reason="moved out of QA", by=admin, username=admin.username,
              password=PASSWORD)
    db_session.commit()
    [entry] = [e for e in history_for(db_session, "user_role", qa_link.id) if e.action == "delete"]
    assert changes(entry)["role"] == ("qa", None)
    assert entry.reason == "moved out of QA"


def test_voidable_record_cannot_be_deleted_only_voided(db_session, sample_table):
    record = SampleRecord(name="n", value="1")
    db_session.add(record)
    db_session.commit()
    db_session.delete(record)
    with pytest.raises(Conflict, match="never deleted"):
        db_session.flush()
    db_session.rollback()
    record = db_session.get(SampleRecord, record.id)
    with pytest.raises(ReasonRequired):
        void_record(db_session, record, "  ")
    void_record(db_session, record, "entered on the wrong record")
    db_session.commit()
    entry = history_for(db_session, "test_sample_record", record.id)[-1]
    assert entry.reason == "entered on the wrong record"
    assert changes(entry)["void_reason"] == (None, "entered on the wrong record")


@pytest.mark.parametrize("statement", ["UPDATE audit_entry SET reason = 'edited'", "DELETE FROM audit_entry"])
def test_raw_update_and_delete_on_the_audit_table_are_refused(db_session, make_user, statement):
    make_user("operator")
    before = db_session.execute(select(AuditEntry.id, AuditEntry.reason)).all()
    assert before
    nested = db_session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(text(statement))
    nested.rollback()
    assert db_session.execute(select(AuditEntry.id, AuditEntry.reason)).all() == before


@pytest.mark.backends("postgresql")  # SQLite has no TRUNCATE
def test_truncate_on_the_audit_table_is_refused_on_postgresql(db_session, make_user):
    make_user("operator")
    nested = db_session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(text("TRUNCATE audit_entry"))
    nested.rollback()
    assert db_session.execute(select(AuditEntry.id)).first() is not None


def _drop_triggers(db_session, backend):
    if backend == "postgresql":
        db_session.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    else:
        db_session.execute(text("DROP TRIGGER audit_entry_no_update"))
        db_session.execute(text("DROP TRIGGER audit_entry_no_delete"))


def test_chain_links_every_entry_to_its_predecessor(db_session, make_user):
    make_user("operator")
    make_user("qa")
    entries = db_session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:]):
        assert after.prev_hash == before.entry_hash
    result = verify_chain(db_session)
    assert result.ok and result.checked == len(entries)


def test_hand_edited_entry_is_detected_by_verify(app, db_session, make_user, backend):
    for role in ("operator", "qa", "admin"):
        make_user(role)
    ids = db_session.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars().all()
    target = ids[len(ids) // 2]
    _drop_triggers(db_session, backend)
    db_session.execute(text("UPDATE audit_entry SET actor_username = 'someone-else' WHERE id = :i"), {"i": target})
    db_session.commit()
    result = verify_chain(db_session)
    assert not result.ok
    assert result.broken_id == target
    assert "edited" in result.problem

    runner = app.test_cli_runner()
    outcome = runner.invoke(args=["audit", "verify"])
    assert outcome.exit_code == 1
    assert f"BROKEN at entry {target}" in outcome.output


def test_removed_entry_is_detected_by_verify(db_session, make_user, backend):
    for role in ("operator", "qa", "admin"):
        make_user(role)
    ids = db_session.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars().all()
    _drop_triggers(db_session, backend)
    db_session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": ids[2]})
    db_session.commit()
    result = verify_chain(db_session)
    assert not result.ok and result.broken_id == ids[3]
    assert "link" in result.problem


def test_verify_command_reports_an_intact_chain(app, db_session, make_user):
    make_user("operator")
    outcome = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert outcome.exit_code == 0, outcome.output
    assert "intact" in outcome.output


def test_concurrent_writers_cannot_fork_the_chain(backend, fresh_database_url):
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = db.make_engine(url)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with Session(engine) as sess, acting_as(Actor(None, f"writer-{n}")):
                    create_user(sess, username=f"w{n}x{i}", full_name=f"Writer {n}", password=PASSWORD,
                                roles=["operator"])
                    sess.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with Session(engine) as sess:
        result = verify_chain(sess)
        users = sess.execute(select(User)).scalars().all()
        per_user = {json.loads(e.changes)["username"][1] for e in sess.execute(
            select(AuditEntry).where(AuditEntry.table_name == "user_account", AuditEntry.action == "insert")).scalars()}
    engine.dispose()
    assert len(users) == 20
    assert len(per_user) == 20
    assert result.ok, result


def test_a_savepoint_rolled_back_after_audited_flushes_leaves_the_chain_intact(db_session, make_user):
    first = make_user("operator", full_name="First Name")
    with audit_reason(db_session, "first change, before the savepoint"):
        first.full_name = "Changed Once"
    savepoint = db_session.begin_nested()
    with audit_reason(db_session, "change that is rolled back"):
        first.full_name = "Rolled Back"
    savepoint.rollback()
    with audit_reason(db_session, "change after the rollback"):
        first.full_name = "Changed Twice"
    db_session.commit()
    reasons = [e.reason for e in history_for(db_session, "user_account", first.id)]
    assert "change that is rolled back" not in reasons
    assert reasons[-2:] == ["first change, before the savepoint", "change after the rollback"]
    assert verify_chain(db_session).ok


@contextlib.contextmanager
def chain_statements_of(sess: Session) -> Iterator[list[str]]:
    """The first word of each statement that touches the audit chain or its lock, while the block runs."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if "audit_entry" in statement or "pg_advisory_xact_lock" in statement:
            seen.append(statement.split()[0])

    engine = sess.get_bind()
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_transaction_chains_its_entries_once_at_commit(db_session, make_user):
    user = make_user("operator", full_name="Name 0")
    with chain_statements_of(db_session) as chain_statements:
        for n in range(1, 4):
            with audit_reason(db_session, f"change {n}"):
                user.full_name = f"Name {n}"
        assert chain_statements == []  # flushed, not yet chained: the chain lock is not held yet
        db_session.commit()
    assert [e.reason for e in history_for(db_session, "user_account", user.id)][-3:] == [
        "change 1", "change 2", "change 3"]
    # the lock (PostgreSQL), one read of the tail, one insert of the three entries
    expected = ["SELECT", "SELECT", "INSERT"] if db_session.get_bind().dialect.name == "postgresql" else ["SELECT",
                                                                                                      "INSERT"]
    assert chain_statements == expected
    assert verify_chain(db_session).ok


def test_reading_the_trail_mid_transaction_shows_its_own_changes(db_session, make_user):
    user = make_user("operator", full_name="Before")
    with audit_reason(db_session, "read back before commit"):
        user.full_name = "After"
    assert history_for(db_session, "user_account", user.id)[-1].reason == "read back before commit"
    with audit_reason(db_session, "a second change after the read"):
        user.full_name = "After Again"
    db_session.commit()
    assert [e.reason for e in history_for(db_session, "user_account", user.id)][-2:] == [
        "read back before commit", "a second change after the read"]
    assert verify_chain(db_session).ok


@pytest.mark.backends("postgresql")
def test_writers_taking_row_locks_in_turn_never_deadlock_on_the_audit_chain(backend, fresh_database_url):
    """A writer holding the chain lock never waits for a row: the chain is written at commit, last."""
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = db.make_engine(url)
    with Session(engine) as sess, acting_as(Actor(None, "setup")):
        ids = [create_user(sess, username=f"row{n}", full_name=f"Row {n}", password=PASSWORD, roles=["operator"]).id
               for n in range(2)]
        sess.commit()
    first, second = Session(engine), Session(engine)
    second_flushed, errors = threading.Event(), []

    def second_writer() -> None:
        try:
            with acting_as(Actor(None, "second")):
                second.get(User, ids[1]).full_name = "Second"
                second.flush()  # holds row 1; with the chain lock taken at flush it would wait for `first` here
                second_flushed.set()
                second.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            errors.append(exc)
            second_flushed.set()

    try:
        with acting_as(Actor(None, "first")):
            first.get(User, ids[0]).full_name = "First"
            first.flush()  # holds row 0
            thread = threading.Thread(target=second_writer)
            thread.start()
            assert second_flushed.wait(timeout=20), "the second writer waited for the first one's flush"
            first.get(User, ids[1]).full_name = "First too"  # waits for `second` to commit, then goes on
            first.commit()
        thread.join(timeout=30)
        assert not errors, errors
        with Session(engine) as sess:
            assert [u.full_name for u in sess.execute(select(User).where(User.id.in_(ids)).order_by(User.id)).scalars()
                    ] == ["First", "First too"]
            assert verify_chain(sess).ok
    finally:
        first.close()
        second.close()
        engine.dispose()


# --- the chain written at commit: savepoints, failed flushes and commits, attribution, order --------------

class _TrailBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Shelf(Audited, _TrailBase):
    """An audited parent that may be deleted (not Voidable); only for the tests below."""

    __tablename__ = "test_trail_shelf"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(40))


class _Box(Audited, _TrailBase):
    """An audited child whose row refers to a shelf, so deleting that shelf first is refused."""

    __tablename__ = "test_trail_box"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(40))
    shelf_id: Mapped[int] = mapped_column(ForeignKey("test_trail_shelf.id"))


def reasons_for(db_session, user) -> list[str | None]:
    return [e.reason for e in history_for(db_session, "user_account", user.id)]


def test_a_savepoint_released_inside_one_that_rolls_back_keeps_the_entries_made_before_both(db_session, make_user):
    user = make_user("operator", full_name="Start")
    with audit_reason(db_session, "kept: before the savepoints"):
        user.full_name = "Kept"
    outer = db_session.begin_nested()
    with db_session.begin_nested():
        with audit_reason(db_session, "dropped: inside the inner savepoint"):
            user.full_name = "Inner"
    outer.rollback()
    db_session.commit()
    reasons = reasons_for(db_session, user)
    assert reasons[-1] == "kept: before the savepoints"
    assert "dropped: inside the inner savepoint" not in reasons
    assert verify_chain(db_session).ok


def test_releasing_a_savepoint_does_not_take_the_chain_lock_before_the_commit(db_session, make_user):
    user = make_user("operator", full_name="Start")
    with chain_statements_of(db_session) as chain_statements:
        with db_session.begin_nested():
            with audit_reason(db_session, "inside a released savepoint"):
                user.full_name = "Released"
        assert chain_statements == []  # the transaction goes on: it must not hold the chain lock yet
        db_session.commit()
    assert chain_statements and chain_statements[-1] == "INSERT"
    assert reasons_for(db_session, user)[-1] == "inside a released savepoint"


def test_reading_the_trail_inside_a_savepoint_that_rolls_back_loses_and_invents_nothing(db_session, make_user):
    user = make_user("operator", full_name="Start")
    with audit_reason(db_session, "kept: before the savepoint"):
        user.full_name = "Kept"
    savepoint = db_session.begin_nested()
    with audit_reason(db_session, "dropped: read back inside the savepoint"):
        user.full_name = "Read back"
    assert reasons_for(db_session, user)[-2:] == ["kept: before the savepoint", "dropped: read back inside the savepoint"]
    with audit_reason(db_session, "dropped: after the read, inside the savepoint"):
        user.full_name = "After the read"
    savepoint.rollback()
    with audit_reason(db_session, "kept: after the rollback"):
        user.full_name = "Final"
    db_session.commit()
    reasons = reasons_for(db_session, user)
    assert reasons[-2:] == ["kept: before the savepoint", "kept: after the rollback"]
    assert not [r for r in reasons if r and r.startswith("dropped")]
    assert verify_chain(db_session).ok


def test_two_savepoints_deep_each_rollback_drops_exactly_its_own_entries(db_session, make_user):
    user = make_user("operator", full_name="Start")
    with audit_reason(db_session, "kept: outside"):
        user.full_name = "A"
    outer = db_session.begin_nested()
    with audit_reason(db_session, "kept: outer savepoint"):
        user.full_name = "B"
    inner = db_session.begin_nested()
    with audit_reason(db_session, "dropped: inner savepoint, read back"):
        user.full_name = "C"
    history_for(db_session, "user_account", user.id)  # writes early, inside the inner savepoint
    inner.rollback()
    with audit_reason(db_session, "kept: outer savepoint, after the inner rollback"):
        user.full_name = "D"
    outer.commit()
    db_session.commit()
    assert reasons_for(db_session, user)[-3:] == [
        "kept: outside", "kept: outer savepoint", "kept: outer savepoint, after the inner rollback"]
    assert "dropped: inner savepoint, read back" not in reasons_for(db_session, user)
    assert verify_chain(db_session).ok


def test_a_flush_that_fails_after_a_delete_leaves_no_delete_entry_for_the_retry(db_session):
    _TrailBase.metadata.create_all(db_session.connection())
    db_session.commit()
    kept_shelf, busy_shelf = _Shelf(label="kept"), _Shelf(label="busy")
    db_session.add_all([kept_shelf, busy_shelf])
    db_session.flush()
    box = _Box(label="box", shelf_id=kept_shelf.id)
    db_session.add_all([box, _Box(label="holds the busy shelf", shelf_id=busy_shelf.id)])
    db_session.commit()
    box_id = box.id
    db_session.delete(box)
    db_session.delete(busy_shelf)  # refused by the database after the box's row was deleted in the same flush
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()
    box = db_session.get(_Box, box_id)
    box.label = "relabelled instead"
    db_session.commit()
    assert db_session.get(_Box, box_id) is not None
    assert [e.action for e in history_for(db_session, "test_trail_box", box_id)] == ["insert", "update"]
    assert verify_chain(db_session).ok


def test_a_failed_commit_retried_in_the_same_session_writes_each_entry_once(db_session, make_user):
    user = make_user("operator", full_name="Start")
    taken = make_user("operator")
    user.full_name = "First try"
    user.username = taken.username  # unique: the commit's own flush fails
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()

    chained_before_refusal: list[str] = []

    def refuse_once(sess):
        chained_before_refusal.extend(sess.execute(select(AuditEntry.changes).where(
            AuditEntry.table_name == "user_account", AuditEntry.record_id == str(user_id))).scalars())
        raise RuntimeError("commit refused after the entries were chained")

    user_id = user.id
    user = db_session.get(User, user_id)
    user.full_name = "Second try"
    event.listen(db_session(), "before_commit", refuse_once)
    try:
        with pytest.raises(RuntimeError):
            db_session.commit()
    finally:
        event.remove(db_session(), "before_commit", refuse_once)
    assert any("Second try" in c for c in chained_before_refusal)  # the refusal came after the chain was written
    db_session.rollback()
    user = db_session.get(User, user.id)
    user.full_name = "Third try"
    db_session.commit()
    updates = [changes(e) for e in history_for(db_session, "user_account", user.id) if e.action == "update"]
    assert updates == [{"full_name": ("Start", "Third try")}]
    assert verify_chain(db_session).ok


def test_a_change_made_by_a_later_commit_hook_is_still_chained(db_session, make_user):
    user = make_user("operator", full_name="Before")
    late = make_user("operator", full_name="Late before")

    def change_at_commit(_sess):
        late.full_name = "Changed while committing"  # flushed by the commit after the chain was written
        record_event(_sess, "user_account", str(late.id), "export", {"format": [None, "csv"]})

    user.full_name = "Changed before the commit"
    event.listen(db_session(), "before_commit", change_at_commit, once=True)
    db_session.commit()
    assert [e.action for e in history_for(db_session, "user_account", late.id)][-2:] == ["update", "export"]
    assert changes(history_for(db_session, "user_account", late.id)[-2]) == {
        "full_name": ("Late before", "Changed while committing")}
    assert verify_chain(db_session).ok

def test_reading_the_trail_shows_a_change_not_yet_flushed(db_session, make_user):
    user = make_user("operator", full_name="Before")
    user.full_name = "Not flushed yet"
    assert changes(history_for(db_session, "user_account", user.id)[-1]) == {
        "full_name": ("Before", "Not flushed yet")}
    db_session.commit()
    assert [e.action for e in history_for(db_session, "user_account", user.id)].count("update") == 1
    assert verify_chain(db_session).ok


def test_a_reason_is_not_given_to_changes_made_before_its_block(db_session, make_user):
    unrelated, corrected = make_user("operator", full_name="Unrelated"), make_user("operator", full_name="Wrong")
    unrelated.full_name = "Changed without a reason"
    with audit_reason(db_session, "name corrected"):
        corrected.full_name = "Right"
    db_session.commit()
    assert reasons_for(db_session, unrelated)[-1] is None
    assert reasons_for(db_session, corrected)[-1] == "name corrected"


def test_a_change_made_inside_acting_as_is_attributed_to_that_actor_when_committed_after_it(db_session, make_user):
    user, earlier = make_user("operator", full_name="Before"), make_user("operator", full_name="Earlier")
    earlier.full_name = "Renamed before the command, by the test"
    with acting_as(Actor(None, "cli:rename")):
        user.full_name = "Renamed by the command"
    db_session.commit()
    assert history_for(db_session, "user_account", user.id)[-1].actor_username == "cli:rename"
    assert history_for(db_session, "user_account", earlier.id)[-1].actor_username == "test"


def test_an_event_recorded_after_a_change_comes_after_it_in_the_chain(db_session, make_user):
    user = make_user("operator", full_name="Before")
    user.full_name = "Changed first"
    record_event(db_session, "user_account", str(user.id), "export", {"format": [None, "pdf"]},
                 reason="exported after the change")
    db_session.commit()
    history = history_for(db_session, "user_account", user.id)
    assert [e.action for e in history[-2:]] == ["update", "export"]
    assert history[-1].reason == "exported after the change"
    assert verify_chain(db_session).ok


def test_a_transaction_with_thousands_of_entries_commits(db_session):
    for n in range(7000):  # more bound values than one PostgreSQL statement may carry (65,535)
        record_event(db_session, "bulk_import", "1", "row", {"n": [None, n]})
    db_session.commit()
    history = history_for(db_session, "bulk_import", "1")
    assert [json.loads(e.changes)["n"][1] for e in history] == list(range(7000))
    assert verify_chain(db_session).ok


@pytest.mark.backends("postgresql")
def test_a_writer_appending_while_a_rolled_back_savepoint_had_written_early_does_not_fork_the_chain(
        backend, fresh_database_url):
    """The tail remembered by an early write inside a rolled-back savepoint is never reused."""
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = db.make_engine(url)
    with Session(engine) as sess, acting_as(Actor(None, "setup")):
        ids = [create_user(sess, username=f"sp{n}", full_name=f"Savepoint {n}", password=PASSWORD,
                           roles=["operator"]).id for n in range(2)]
        sess.commit()
    first = Session(engine)
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with Session(engine) as sess, acting_as(Actor(None, "other")):
                sess.get(User, ids[1]).full_name = "Appended by the other writer"
                sess.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    try:
        with acting_as(Actor(None, "first")):
            savepoint = first.begin_nested()
            first.get(User, ids[0]).full_name = "Rolled back"
            history_for(first, "user_account", ids[0])  # chains early, inside the savepoint
            savepoint.rollback()
            thread = threading.Thread(target=other_writer)
            thread.start()
            thread.join(timeout=5)  # appends now if the rollback released the chain lock, else after our commit
            first.get(User, ids[0]).full_name = "Kept"
            first.commit()
        thread.join(timeout=30)
        assert not errors, errors
        with Session(engine) as sess:
            assert verify_chain(sess).ok
            names = [json.loads(e.changes).get("full_name", [None, None])[1] for e in sess.execute(
                select(AuditEntry).where(AuditEntry.action == "update")).scalars()]
            assert sorted(names) == ["Appended by the other writer", "Kept"]
    finally:
        first.close()
        engine.dispose()


def test_a_wrong_password_drops_the_requests_entries_even_if_written_early_and_commits_its_own(db_session, make_user):
    signer, edited = make_user("qa"), make_user("operator", full_name="Unchanged")
    with audit_reason(db_session, "dropped: the request is refused"):
        edited.full_name = "Edited by the refused request"
    history_for(db_session, "user_account", edited.id)  # the page read its own entries: written early
    with pytest.raises(SignatureRefused):
        authenticate(db_session, signer.username, "not-the-password", context="e-signature")
    db_session.rollback()  # the request ends refused
    assert db_session.get(User, edited.id).full_name == "Unchanged"
    assert "dropped: the request is refused" not in reasons_for(db_session, edited)
    assert reasons_for(db_session, signer)[-1] == "failed e-signature: wrong password"
    assert verify_chain(db_session).ok


def test_closing_a_session_without_commit_leaves_nothing_in_the_trail(db_session, make_user):
    user = make_user("operator", full_name="Unchanged")
    with audit_reason(db_session, "dropped: never committed"):
        user.full_name = "Never committed"
    history_for(db_session, "user_account", user.id)
    db_session.close()
    assert "dropped: never committed" not in reasons_for(db_session, user)
    with audit_reason(db_session, "kept: committed afterwards"):
        db_session.get(User, user.id).full_name = "Committed"
    db_session.commit()
    assert reasons_for(db_session, user)[-1] == "kept: committed afterwards"
    assert verify_chain(db_session).ok
