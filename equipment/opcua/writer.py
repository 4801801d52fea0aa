"""The collector's database writer: a thread that takes samples from the OPC UA event loop and writes
them in batches, one transaction each, spooling them to disk while the database is unavailable."""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.db import make_engine
from equipment.opcua.spool import Spool
from equipment.telemetry import GapEvent, IngestResult, IngestState, SampleIn, ingest

log = logging.getLogger("equipment.collector.writer")
COLLECTOR_ACTOR = Actor(None, "collector")


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


class TelemetryWriter:
    """Writes items in order; while the database fails, appends them to the spool and retries."""

    def __init__(self, database_url: str, spool_path: str | Path, *, batch_size: int = 5000,
                 flush_interval: float = 0.2, retry_interval: float = 1.0, lock_timeout_ms: int = 5000,
                 reload_interval: float = 10.0):
        self.engine = writer_engine(database_url, lock_timeout_ms)
        self.spool = Spool(spool_path)
        self.state = IngestState()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.reload_interval = reload_interval
        self._queue: queue.SimpleQueue[SampleIn | GapEvent | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_load = 0.0
        self._next_retry = 0.0
        self.database_ok = True
        self.written = 0
        self.last_error: str | None = None

    # called from the OPC UA event loop: never blocks on the database
    def submit(self, item: SampleIn | GapEvent) -> None:
        self._queue.put(item)

    def write(self, items: Sequence[SampleIn | GapEvent]) -> IngestResult:
        """One unit of work: write the items in one transaction, or raise and change nothing."""
        snapshot = self.state.snapshot()
        try:
            with acting_as(COLLECTOR_ACTOR), Session(self.engine, expire_on_commit=False) as sess:
                with sess.begin():
                    if time.monotonic() - self._last_load > self.reload_interval:
                        self.state.load(sess)
                        self._last_load = time.monotonic()
                    result = ingest(sess, items, self.state)
        except BaseException:
            self.state.restore(snapshot)
            raise
        self.written += result.offered
        return result

    def handle(self, items: list[SampleIn | GapEvent]) -> None:
        """Write new items, keeping order behind anything already spooled."""
        if items and (len(self.spool) or not self._try_write(items)):
            self.spool.append(items)
        self.drain_spool()

    def _try_write(self, items: Sequence[SampleIn | GapEvent]) -> bool:
        if time.monotonic() < self._next_retry:
            return False
        try:
            for chunk_start in range(0, len(items), self.batch_size):
                self.write(items[chunk_start:chunk_start + self.batch_size])
        except SQLAlchemyError as exc:
            self._database_failed(exc)
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
        self.last_error = str(exc).splitlines()[0]
        self._next_retry = time.monotonic() + self.retry_interval

    def drain_spool(self) -> None:
        """Write spooled items to the database, oldest first, until the spool is empty or it fails."""
        while not self._stop.is_set() or self._stopping_drain:
            if time.monotonic() < self._next_retry:
                return
            rows = self.spool.peek(self.batch_size)
            if not rows:
                return
            try:
                self.write([item for _seq, item in rows])
            except SQLAlchemyError as exc:
                self._database_failed(exc)
                return
            self.spool.remove_through(rows[-1][0])
            if not self.database_ok:
                log.warning("database available again; spooled telemetry is being written")
            self.database_ok = True

    _stopping_drain = False

    def _collect(self) -> list[SampleIn | GapEvent]:
        items: list[SampleIn | GapEvent] = []
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

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.handle(self._collect())
            except Exception:  # keep the writer alive whatever a batch did; the spool keeps the data
                log.exception("telemetry writer error")
                time.sleep(self.retry_interval)
        # final flush of what was received before the stop
        rest: list[SampleIn | GapEvent] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        self._stopping_drain = True
        self._next_retry = 0.0
        try:
            self.handle(rest)
        except Exception:
            log.exception("telemetry writer error at stop")
            self.spool.append(rest)

    def start(self) -> "TelemetryWriter":
        self._thread = threading.Thread(target=self.run, name="telemetry-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        self.spool.close()
        self.engine.dispose()
