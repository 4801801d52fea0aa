"""The Part 11 audit trail: append-only, hash-chained, captured once and generically for GMP tables.

Every model that inherits ``Audited`` has each insert, update and delete captured by the session's flush
and written to ``audit_entry`` in the same transaction, when it commits. Entries are linked by SHA-256 hashes;
database triggers (see the first migration) refuse UPDATE, DELETE and TRUNCATE on the table.
"""
from __future__ import annotations

import contextlib
import contextvars
import decimal
import enum
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterator

from sqlalchemy import Integer, String, Text, event, func, insert, inspect, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, scoped_session
from sqlalchemy.orm.base import NO_VALUE  # an attribute that holds no loaded value

from app.db import Base, advisory_xact_lock, utcnow
from app.db import session as shared_session
from app.errors import Conflict, ReasonRequired

GENESIS_HASH = "0" * 64
REDACTED = "<redacted>"
AUDIT_CHAIN_LOCK = "audit_entry_chain"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, or a named system process (collector, CLI)."""

    user_id: int | None
    username: str


SYSTEM = Actor(None, "system")
ANONYMOUS = Actor(None, "anonymous")
# No default: a request, job or command that has not said who is acting cannot write to the trail.
_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)


class UnknownActor(RuntimeError):
    """Something tried to record a change while nobody had said who is acting (a programming error)."""


def set_actor(actor: Actor | None) -> contextvars.Token:
    """Say who acts from now on in this context; ``None`` forgets it (the start of every request or job)."""
    return _actor.set(actor)


def reset_actor(token: contextvars.Token) -> None:
    """Put back the actor that was in force before ``set_actor`` returned ``token``."""
    try:
        _actor.reset(token)
    except ValueError:  # made in another context: forget the actor rather than keep this one
        _actor.set(None)


def current_actor() -> Actor:
    """Who is acting; raises ``UnknownActor`` when nobody said (never a leftover from earlier work)."""
    actor = _actor.get()
    if actor is None:
        raise UnknownActor("nothing may be recorded without a known actor: set one with acting_as or set_actor")
    return actor


def _flush_shared_session_changes() -> None:
    """Capture the shared session's unflushed changes now, under the actor and reason they were made with."""
    if not shared_session.registry.has():
        return
    sess = shared_session()
    if sess.new or sess.dirty or sess.deleted:
        sess.flush()


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Attribute the changes made inside the block to ``actor``.

    The trail takes who acted when a change is flushed, so the shared session's changes are flushed on the
    way in (made by the previous actor) and on the way out (made by this one, even if committed later).
    A separate Session must be flushed or committed inside the block."""
    _flush_shared_session_changes()
    token = _actor.set(actor)
    try:
        yield
        _flush_shared_session_changes()
    finally:
        _actor.reset(token)


@contextlib.contextmanager
def audit_reason(sess: Session, reason: str | None) -> Iterator[None]:
    """Attach a reason to every change made inside the block (and to no change made before it)."""
    sess.flush()  # changes made before the block are captured without this reason
    previous = sess.info.get("audit_reason")
    sess.info["audit_reason"] = (reason or "").strip() or None
    try:
        yield
        sess.flush()
    finally:
        sess.info["audit_reason"] = previous


class Audited:
    """Mixin: changes to this model are written to the audit trail.

    ``__audit_redact__`` names columns whose values never enter the trail in clear (password hashes,
    secrets); the trail records that they changed.
    """

    __audit_redact__: frozenset[str] = frozenset()


class Voidable:
    """Mixin for GMP records that are never deleted, only voided with a reason."""

    __allow_delete__ = False
    voided_at: Mapped[datetime | None] = mapped_column(default=None)
    voided_by: Mapped[str | None] = mapped_column(String(80), default=None)
    void_reason: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


def void_record(sess: Session, record: Voidable, reason: str) -> None:
    """Void a GMP record: it stays, marked, with who, when and why."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Voiding a record needs a reason.", errors={"reason": ["Give the reason for voiding."]})
    if record.is_voided:
        raise Conflict("This record is already voided.")
    with audit_reason(sess, reason):
        record.voided_at = utcnow()
        record.voided_by = current_actor().username
        record.void_reason = reason


class AuditEntry(Base):
    """One change to one GMP record. Append-only; each row hashes its predecessor."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_username: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(10))
    table_name: Mapped[str] = mapped_column(String(80), index=True)
    record_id: Mapped[str] = mapped_column(String(80), index=True)
    changes: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)

    @property
    def change_list(self) -> list[tuple[str, Any, Any]]:
        return [(k, v[0], v[1]) for k, v in sorted(json.loads(self.changes).items())]


def to_jsonable(value: Any) -> Any:
    """A stable JSON form for any column value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, (dict, list)):
        return json.loads(canonical_json(value))
    return str(value)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=to_jsonable)


def compute_entry_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def entry_content(row: Any) -> dict[str, Any]:
    """The hashed content of an entry (everything but its id and hashes)."""
    return {
        "occurred_at": to_jsonable(row.occurred_at),
        "actor_id": row.actor_id,
        "actor_username": row.actor_username,
        "action": row.action,
        "table_name": row.table_name,
        "record_id": row.record_id,
        "changes": row.changes,
        "reason": row.reason,
    }


def record_key(obj: Any) -> str:
    """The record's primary key as text (also for a just-flushed object that has no identity key yet)."""
    state = inspect(obj)
    identity = state.identity or state.mapper.primary_key_from_instance(obj)
    return "/".join(str(part) for part in identity)


def _column_attrs(obj: Any) -> list[Any]:
    return list(inspect(obj).mapper.column_attrs)


def _value_for_trail(obj: Any, key: str, value: Any) -> Any:
    return REDACTED if key in type(obj).__audit_redact__ and value is not None else to_jsonable(value)


def _preload_unloaded_old_values(sess: Session) -> None:
    """Before flushing, fetch the stored value of any changed attribute whose old value was never
    loaded, so that the trail never hides an earlier value."""
    pending: dict[int, dict[str, Any]] = {}
    for obj in sess.dirty:
        if not isinstance(obj, Audited):
            continue
        state = inspect(obj)
        missing = []
        for attr in _column_attrs(obj):
            hist = state.attrs[attr.key].history
            if hist.added and not hist.deleted and state.key is not None:
                missing.append(attr)
        if missing:
            mapper = state.mapper
            stmt = select(*[attr.columns[0] for attr in missing]).where(
                *[col == val for col, val in zip(mapper.primary_key, state.identity)]
            )
            row = sess.execute(stmt).one_or_none()
            if row is not None:
                pending[id(obj)] = {attr.key: row[i] for i, attr in enumerate(missing)}
    sess.info["audit_preloaded"] = pending


def _changes_for(sess: Session, obj: Any, action: str) -> dict[str, list[Any]]:
    state = inspect(obj)
    preloaded = sess.info.get("audit_preloaded", {}).get(id(obj), {})
    changes: dict[str, list[Any]] = {}
    for attr in _column_attrs(obj):
        key = attr.key
        if action == "insert":
            value = getattr(obj, key)
            if value is not None:
                changes[key] = [None, _value_for_trail(obj, key, value)]
        elif action == "delete":
            value = state.attrs[key].loaded_value
            value = None if value is NO_VALUE else value
            changes[key] = [_value_for_trail(obj, key, value), None]
        else:
            hist = state.attrs[key].history
            if not hist.has_changes():
                continue
            old = hist.deleted[0] if hist.deleted else preloaded.get(key)
            new = hist.added[0] if hist.added else None
            if old == new:
                continue
            changes[key] = [_value_for_trail(obj, key, old), _value_for_trail(obj, key, new)]
    return changes


# --- hooks the signatures module plugs into (kept here to avoid an import cycle) -------------------
_signed_change_checks: list[Any] = []


def register_signed_change_check(check: Any) -> None:
    """``check(session, obj, changed_keys) -> bool``: True when the change touches signed content."""
    _signed_change_checks.append(check)


@event.listens_for(Session, "before_flush")
def _guard_and_prepare(sess: Session, _ctx: Any, _instances: Any) -> None:
    # rows deleted by an earlier flush that then failed were rolled back: they must not reach this flush's entries
    sess.info["audit_deleted"] = []
    reason = sess.info.get("audit_reason")
    for obj in sess.deleted:
        if isinstance(obj, Voidable) and not type(obj).__allow_delete__:
            raise Conflict(
                f"A {type(obj).__name__} record is a GMP record and is never deleted; void it with a reason."
            )
    for obj in list(sess.dirty) + list(sess.deleted):
        if not isinstance(obj, Audited):
            continue
        state = inspect(obj)
        changed = {a.key for a in _column_attrs(obj) if state.attrs[a.key].history.has_changes()}
        if obj not in sess.deleted and not changed:
            continue
        for check in _signed_change_checks:
            if check(sess, obj, changed) and not reason:
                raise ReasonRequired(
                    f"This {type(obj).__name__} record has been signed; a change needs a reason.",
                    errors={"reason": ["A reason is required to change a signed record."]},
                )
    _preload_unloaded_old_values(sess)


@event.listens_for(Audited, "after_delete", propagate=True)
def _collect_deleted(_mapper: Any, _connection: Any, target: Any) -> None:
    """Every row deleted in a flush, including orphans removed by a cascade (not in session.deleted)."""
    if isinstance(target, Voidable) and not type(target).__allow_delete__:
        raise Conflict(
            f"A {type(target).__name__} record is a GMP record and is never deleted; void it with a reason."
        )
    sess = object_session(target)
    if sess is not None:
        sess.info.setdefault("audit_deleted", []).append(target)


@event.listens_for(Session, "after_flush")
def _capture_audit_entries(sess: Session, _ctx: Any) -> None:
    rows = []
    deleted = sess.info.pop("audit_deleted", [])
    for action, objs in (("insert", sess.new), ("update", sess.dirty), ("delete", deleted)):
        for obj in objs:
            if not isinstance(obj, Audited):
                continue
            if action == "update" and not sess.is_modified(obj, include_collections=False):
                continue
            changes = _changes_for(sess, obj, action)
            if action == "update" and not changes:
                continue
            rows.append((action, obj, changes))
    sess.info.pop("audit_preloaded", None)
    if not rows:
        return
    append_entries(sess, [(action, obj.__tablename__, record_key(obj), changes) for action, obj, changes in rows])


_CHAIN_TAIL = "audit_chain_tail"
_CAPTURED = "audit_captured"  # every entry this transaction has captured so far, in the order of its changes
_WRITTEN = "audit_written"  # how many of them are already inserted into the chain (by an early read)
_SAVEPOINT_MARKS = "audit_savepoint_marks"
_COMMITTING = "audit_committing"  # the transaction whose commit has chained its entries already
# Rows per INSERT: ten bound values each stays far below PostgreSQL's 65,535 and SQLite's 32,766 per statement.
_ROWS_PER_INSERT = 1000


def _plain(sess: Session) -> Session:
    """The session itself, for a scoped session too (its ``info`` is per session)."""
    return sess() if isinstance(sess, scoped_session) else sess


def _chain_tail(sess: Session) -> str:
    """The hash of the newest entry, read under the chain lock (once per transaction).

    While this transaction holds the lock nobody else can append, so the tail it wrote last is still
    the tail. The remembered tail is forgotten whenever a savepoint or the transaction ends or anything
    rolls back, so a savepoint rolled back with its entries can never leave a stale tail behind."""
    remembered = sess.info.get(_CHAIN_TAIL)
    if remembered is not None and remembered[0] is sess.get_transaction():
        return remembered[1]
    advisory_xact_lock(sess, AUDIT_CHAIN_LOCK)
    return sess.execute(
        select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS_HASH


def append_entries(sess: Session, items: list[tuple[str, str, str, dict[str, Any]]], reason: str | None = None) -> None:
    """Add entries to this transaction's part of the trail; they are chained when it commits.

    Who, why and the changed values are captured now. The chain lock is taken only at commit
    (``write_pending_entries``), after every other lock the transaction needs: a writer holding the chain
    lock never waits for anything else, so it can never be part of a deadlock, and other writers wait
    for it only as long as its commit takes."""
    sess = _plain(sess)
    actor = current_actor()
    reason = reason or sess.info.get("audit_reason")
    sess.info.setdefault(_CAPTURED, []).extend(
        {"actor_id": actor.user_id, "actor_username": actor.username, "action": action, "table_name": table_name,
         "record_id": record_id, "changes": canonical_json(changes), "reason": reason}
        for action, table_name, record_id, changes in items)
    if sess.info.get(_COMMITTING) is not None and sess.info[_COMMITTING] is sess.get_transaction():
        # captured by the commit's own later flushes (another before_commit hook changed something):
        # the chain lock is held already, so chain them now rather than lose them
        write_pending_entries(sess)


def write_pending_entries(sess: Session) -> None:
    """Chain and insert this transaction's entries not yet written (at commit, or before reading the trail)."""
    sess = _plain(sess)
    captured = sess.info.get(_CAPTURED, [])
    written = sess.info.get(_WRITTEN, 0)
    if written >= len(captured):
        return
    with sess.no_autoflush:
        prev_hash = _chain_tail(sess)
        now = utcnow()
        values = []
        for item in captured[written:]:
            row = {"occurred_at": now, **item, "prev_hash": prev_hash}
            row["entry_hash"] = compute_entry_hash(prev_hash, entry_content(_Row(row)))
            prev_hash = row["entry_hash"]
            values.append(row)
        # Multi-row INSERTs, one after the other: the rows of a VALUES list take their ids in list order,
        # so ids follow the chain's order. What is written is noted after each one, so that a failure part
        # way never leads to an entry written twice.
        for start in range(0, len(values), _ROWS_PER_INSERT):
            chunk = values[start:start + _ROWS_PER_INSERT]
            sess.execute(insert(AuditEntry.__table__).values(chunk))
            sess.info[_WRITTEN] = written + start + len(chunk)
            sess.info[_CHAIN_TAIL] = (sess.get_transaction(), chunk[-1]["entry_hash"])


def _write_own_entries_before_reading(sess: Session) -> None:
    """Before reading the trail: capture unflushed changes (as the read's autoflush would) and write them."""
    sess = _plain(sess)
    if sess.autoflush:
        sess.flush()
    write_pending_entries(sess)


@event.listens_for(Session, "before_commit")
def _chain_at_commit(sess: Session) -> None:
    # Also called when a savepoint is released: its entries stay pending until the whole transaction
    # commits, so the chain lock is still taken last and a later rollback of an enclosing savepoint
    # cannot take entries written inside it away.
    if sess.get_nested_transaction() is not None:
        return
    sess.flush()  # the commit's own flush would come after this hook: capture every change first
    write_pending_entries(sess)
    sess.info[_COMMITTING] = sess.get_transaction()


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(sess: Session, transaction: Any) -> None:
    if transaction.nested:
        sess.info.setdefault(_SAVEPOINT_MARKS, {})[transaction] = (
            len(sess.info.get(_CAPTURED, ())), sess.info.get(_WRITTEN, 0))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back_entries(sess: Session, previous_transaction: Any) -> None:
    sess.info.pop(_CHAIN_TAIL, None)
    sess.info.pop(_COMMITTING, None)
    sess.info.pop("audit_deleted", None)
    marks = sess.info.get(_SAVEPOINT_MARKS, {})
    if previous_transaction.nested and previous_transaction in marks:
        captured_before, written_before = marks.pop(previous_transaction)
        # entries captured inside the savepoint go; entries written inside it were rolled back with it
        # (including earlier ones written there by a read) and are written again later
        del sess.info.get(_CAPTURED, [])[captured_before:]
        sess.info[_WRITTEN] = min(sess.info.get(_WRITTEN, 0), written_before)
    elif previous_transaction.parent is None:
        sess.info.pop(_CAPTURED, None)
        sess.info.pop(_WRITTEN, None)


@event.listens_for(Session, "after_transaction_end")
def _end_of_transaction(sess: Session, transaction: Any) -> None:
    # A flush runs in a subtransaction of its own; only the end of a savepoint or of the whole
    # transaction can change the chain's tail.
    if transaction.nested or transaction.parent is None:
        sess.info.pop(_CHAIN_TAIL, None)
    # (a savepoint's mark stays until the whole transaction ends: after_soft_rollback comes after this hook)
    if transaction.parent is None:  # committed (already written) or rolled back: nothing carries over
        sess.info.pop(_CAPTURED, None)
        sess.info.pop(_WRITTEN, None)
        sess.info.pop(_SAVEPOINT_MARKS, None)
        sess.info.pop(_COMMITTING, None)


def record_event(sess: Session, table_name: str, record_id: str, action: str, details: dict[str, Any],
                 reason: str | None = None) -> None:
    """Write a non-data event (login failure, lockout, export) to the same chain, after the changes made
    before it."""
    sess = _plain(sess)
    if sess.autoflush:
        sess.flush()
    append_entries(sess, [(action, table_name, record_id, details)], reason=reason)


class _Row:
    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str | None = None


def verify_chain(sess: Session, batch_size: int = 5000) -> VerifyResult:
    """Walk the whole chain in order; name the first entry whose link or content does not match."""
    _write_own_entries_before_reading(sess)
    prev_hash = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        entries = sess.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch_size)
        ).scalars().all()
        if not entries:
            return VerifyResult(True, checked)
        for entry in entries:
            if entry.prev_hash != prev_hash:
                return VerifyResult(False, checked, entry.id, "link to the previous entry is broken "
                                    "(an entry was removed, inserted or reordered)")
            if compute_entry_hash(entry.prev_hash, entry_content(entry)) != entry.entry_hash:
                return VerifyResult(False, checked, entry.id, "content does not match its hash (edited)")
            prev_hash = entry.entry_hash
            checked += 1
            last_id = entry.id
        sess.expunge_all()


def history_for(sess: Session, table_name: str, record_id: str | int) -> list[AuditEntry]:
    """The audit history of one record, oldest first."""
    _write_own_entries_before_reading(sess)
    return list(sess.execute(
        select(AuditEntry).where(AuditEntry.table_name == table_name, AuditEntry.record_id == str(record_id))
        .order_by(AuditEntry.id)
    ).scalars())


def search_trail(sess: Session, *, username: str | None = None, table_name: str | None = None,
                 start: datetime | None = None, end: datetime | None = None,
                 page: int = 1, per_page: int = 50) -> tuple[list[AuditEntry], int]:
    """Filter the whole trail by user, record type and time range; newest first, paged."""
    _write_own_entries_before_reading(sess)
    stmt = select(AuditEntry)
    if username:
        stmt = stmt.where(AuditEntry.actor_username == username)
    if table_name:
        stmt = stmt.where(AuditEntry.table_name == table_name)
    if start:
        stmt = stmt.where(AuditEntry.occurred_at >= start)
    if end:
        stmt = stmt.where(AuditEntry.occurred_at < end)
    total = sess.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    items = sess.execute(
        stmt.order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).scalars().all()
    return list(items), total
