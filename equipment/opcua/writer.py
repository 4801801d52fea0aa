"""The collector's database writer: a thread that takes samples from the OPC UA event loop and writes
them in batches, one transaction each, spooling them to disk while the database is unavailable.

Two kinds of failure are told apart. A database that is down, unreachable, locked or too slow makes
the batch wait in the spool and be retried, in order. A batch the database refuses because of what is
in it (or that fails for any other reason) also goes to the spool; from there it is written in halves
until the one item that can never be written is found, and that item is set aside in the spool's
``rejected`` table and recorded in the audit trail of its equipment. Nothing is ever dropped, and one
bad item never holds up the rest.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as, record_event
from app.db import make_engine
from equipment.opcua.spool import Item, RejectedItem, Spool
from equipment.telemetry import (REJECTED_ACTION, GapEvent, Heartbeat, IngestResult, IngestState, SampleIn,
                                 SubscriptionRevision, expire_shelving, from_us, ingest)

log = logging.getLogger("equipment.collector.writer")
COLLECTOR_ACTOR = Actor(None, "collector")
SHELVING_CHECK_S = 1.0  # how often a unit of work also ends the shelvings whose time is up


def writer_engine(database_url: str, lock_timeout_ms: int = 5000) -> Any:
    """An engine whose writes give up after ``lock_timeout_ms`` instead of waiting: a database that
    cannot take a batch in that time counts as unavailable and the batch goes to the spool."""
    if database_url.startswith(("postgresql://", "postgresql+psycopg://")):
        return make_engine(database_url, pool_size=2, connect_args={
            "options": f"-c lock_timeout={lock_timeout_ms} -c statement_timeout={lock_timeout_ms * 4}",
            "connect_timeout": max(1, lock_timeout_ms // 1000)})
    engine = make_engine(database_url)

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")

    return engine


def database_unavailable(exc: BaseException) -> bool:
    """The database could not take the batch (down, unreachable, locked, timed out), as opposed to
    refusing what is in it: only then is the same batch worth retrying unchanged."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError))


def describe_error(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}".strip().rstrip(":")[:500]


def _time_text(at_us: Any) -> str:
    try:
        return from_us(int(at_us)).isoformat()
    except (OverflowError, ValueError, TypeError):  # the very reason some items cannot be stored
        return f"{at_us} us since 1970 (not a representable time)"


class TelemetryWriter:
    """Writes items in order; while the database fails, appends them to the spool and retries."""

    def __init__(self, database_url: str, spool_path: str | Path, *, batch_size: int = 5000,
                 flush_interval: float = 0.2, retry_interval: float = 1.0, lock_timeout_ms: int = 5000,
                 reload_interval: float = 10.0, stop_drain_seconds: float = 5.0):
        self.engine = writer_engine(database_url, lock_timeout_ms)
        self.spool = Spool(spool_path)
        self.state = IngestState()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.reload_interval = reload_interval
        self.stop_drain_seconds = stop_drain_seconds
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_load = 0.0
        self._last_shelving_check = 0.0
        self._next_retry = 0.0
        self._stopping = False
        self._drain_deadline = math.inf
        self.database_ok = True
        self.written = 0
        self.rejected = 0
        self.left_in_spool: int | None = None  # counted at stop
        self.last_error: str | None = None

    # called from the OPC UA event loop: never blocks on the database
    def submit(self, item: Item) -> None:
        self._queue.put(item)

    def write(self, items: Sequence[Item]) -> IngestResult:
        """One unit of work: write the items in one transaction, or raise and change nothing."""
        snapshot = self.state.snapshot()
        checked: float | None = None
        try:
            with acting_as(COLLECTOR_ACTOR), Session(self.engine, expire_on_commit=False) as sess:
                with sess.begin():
                    if time.monotonic() - self._last_load > self.reload_interval:
                        self.state.load(sess)
                        self._last_load = time.monotonic()
                    result = ingest(sess, items, self.state)
                    if time.monotonic() - self._last_shelving_check >= SHELVING_CHECK_S:
                        expire_shelving(sess, result)
                        checked = time.monotonic()
        except BaseException:
            self.state.restore(snapshot)
            self._last_load = 0.0  # evaluators made by a load in the failed unit are gone: load again
            raise
        self.written += result.offered
        if checked is not None:
            self._last_shelving_check = checked
        return result

    def handle(self, items: list[Item]) -> None:
        """Write new items, keeping order behind anything already spooled; what is not written is spooled."""
        if items and (len(self.spool) or not self._try_write(items)):
            self.spool.append(items)
        self.drain_spool()
        self.report_rejections()

    def _try_write(self, items: Sequence[Item]) -> bool:
        """True when every item is written or spooled here; False when none was and the caller spools them."""
        if time.monotonic() < self._next_retry:
            return False
        for chunk_start in range(0, len(items), self.batch_size):
            try:
                self.write(items[chunk_start:chunk_start + self.batch_size])
            except Exception as exc:
                if database_unavailable(exc):
                    self._database_failed(exc)
                else:
                    log.error("a telemetry batch failed (%s); it waits in the spool and is written item by item",
                              describe_error(exc))
                if chunk_start:
                    # earlier chunks are committed: only the rest waits in the spool
                    self.spool.append(list(items[chunk_start:]))
                    return True
                return False
        self.database_ok = True
        return True

    def _database_failed(self, exc: Exception) -> None:
        if self.database_ok:
            log.warning("database unavailable, spooling telemetry to %s: %s", self.spool.path, exc)
        self.database_ok = False
        self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._next_retry = time.monotonic() + self.retry_interval

    def drain_spool(self) -> None:
        """Write spooled items to the database, oldest first, until the spool is empty or it fails."""
        while not self._stop.is_set() or self._stopping:
            if time.monotonic() < self._next_retry:
                return
            if self._stopping and time.monotonic() > self._drain_deadline:
                return  # the rest stays in the spool, written at the next start
            rows = self.spool.peek(self.batch_size)
            if not rows:
                return
            if not self._write_spooled(rows):
                return
            if not self.database_ok:
                log.warning("database available again; spooled telemetry is being written")
            self.database_ok = True

    def _write_spooled(self, rows: list[tuple[int, Item]]) -> bool:
        """Write spooled rows in order, setting aside any single item that can never be written.

        Returns False (rows left in the spool) when the database became unavailable."""
        try:
            self.write([item for _seq, item in rows])
        except Exception as exc:
            if database_unavailable(exc):
                self._database_failed(exc)
                return False
            if len(rows) == 1:
                self._reject(rows[0], exc)
                return True
            middle = len(rows) // 2
            return self._write_spooled(rows[:middle]) and self._write_spooled(rows[middle:])
        self.spool.remove_through(rows[-1][0])
        return True

    def _reject(self, row: tuple[int, Item], exc: Exception) -> None:
        seq, item = row
        error = describe_error(exc)
        log.error("telemetry item refused for good, kept in %s (rejected, #%d): %s; %s", self.spool.path, seq,
                  item, error)
        self.spool.reject(seq, error)
        self.rejected += 1

    def _owner(self, item: Item) -> tuple[str, str]:
        """The record whose audit history shows the rejection: the equipment, else the tag."""
        if isinstance(item, (GapEvent, Heartbeat)):
            return "equipment_asset", str(item.asset_id)
        if isinstance(item, SubscriptionRevision):
            return "equipment_tag", str(item.tag_id)
        known = self.state.tags.get(item.tag_id)
        return ("equipment_asset", str(known[0])) if known else ("equipment_tag", str(item.tag_id))

    def report_rejections(self) -> None:
        """Record each item set aside in the audit trail (once), as soon as the database is available."""
        if time.monotonic() < self._next_retry:
            return
        pending = self.spool.rejected(unreported_only=True)
        if not pending:
            return
        try:
            with acting_as(COLLECTOR_ACTOR), Session(self.engine) as sess:
                with sess.begin():
                    for rejected in pending:
                        table_name, record_id = self._owner(rejected.item)
                        record_event(sess, table_name, record_id, REJECTED_ACTION, self._details(rejected),
                                     reason="telemetry the database refused; kept in the collector's spool")
        except Exception as exc:
            if database_unavailable(exc):
                self._database_failed(exc)
            else:
                log.exception("cannot record rejected telemetry in the audit trail")
            return
        self.spool.mark_reported([r.seq for r in pending])

    def _details(self, rejected: RejectedItem) -> dict[str, list[Any]]:
        item = rejected.item
        if isinstance(item, SampleIn):
            what = {"tag_id": str(item.tag_id), "source_time": _time_text(item.source_us), "value": repr(item.value),
                    "status_code": str(item.status_code)}
        elif isinstance(item, Heartbeat):
            what = {"heartbeat": _time_text(item.alive_us)}
        elif isinstance(item, SubscriptionRevision):
            what = {"subscription": repr(item)}
        else:
            what = {"gap_cause": item.cause, "gap_action": item.action, "at": _time_text(item.at_us),
                    "detail": item.detail or ""}
        what.update(error=rejected.error, spool=f"{self.spool.path} (rejected #{rejected.seq})")
        return {key: [None, value] for key, value in what.items()}

    def _collect(self) -> list[Item]:
        items: list[Item] = []
        deadline = time.monotonic() + self.flush_interval
        while len(items) < self.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if item is None:
                break
            items.append(item)
        return items

    def _take_queued(self) -> list[Item]:
        rest: list[Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rest
            if item is not None:
                rest.append(item)

    def _handle_keeping(self, items: list[Item]) -> list[Item]:
        """handle(items); if even the spool fails, give the items back to be tried again."""
        try:
            self.handle(items)
        except Exception:  # the spool itself failed (disk full?): keep the items in memory and retry
            log.exception("telemetry writer error; %d items kept in memory and retried", len(items))
            return items
        return []

    def run(self) -> None:
        held: list[Item] = []
        while not self._stop.is_set():
            held = self._handle_keeping(held + self._collect())
            if held:
                self._stop.wait(self.retry_interval)
        # final flush of everything received before the stop: to the database, else to the spool
        self._stopping = True
        self._drain_deadline = time.monotonic() + self.stop_drain_seconds
        self._next_retry = 0.0
        held = self._handle_keeping(held + self._take_queued())
        if held:
            log.error("%d telemetry items could not be written or spooled at stop", len(held))

    def start(self) -> "TelemetryWriter":
        self._thread = threading.Thread(target=self.run, name="telemetry-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after writing (or spooling) what was received; False if the writer did not finish in time."""
        self._stop.set()
        self._queue.put(None)
        finished = True
        if self._thread is not None:
            self._thread.join(timeout)
            finished = not self._thread.is_alive()
        if finished:
            self.left_in_spool = len(self.spool)
            self.spool.close()
            self.engine.dispose()
        else:  # closing the spool under a running writer could lose what it is writing
            log.error("telemetry writer still busy after %.0f s; leaving it to finish", timeout)
        return finished
