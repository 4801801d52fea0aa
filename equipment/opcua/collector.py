"""The OPC UA collector: a long-running process that subscribes to every asset's tags and hands what it
receives to the database writer.

- asyncua subscriptions (not polling), one client per endpoint, reconnecting after any loss;
- the event loop never waits on the database: notifications go to a queue that the writer thread
  drains in batches, one transaction each, spooling to disk while the database is unavailable;
- gaps: a lost connection, a server restart (ServerStatus.StartTime changed), a missed notification
  sequence number, a stale subscription, bad-quality values, and the collector's own downtime;
- only one collector writes for an asset: a PostgreSQL advisory lock, or a file lock beside SQLite. The
  advisory locks live on one connection; it is checked every ``lock_check_interval`` seconds, and when
  it has dropped (a database restart, a network cut) the locks are taken again on a new connection as
  soon as the database answers, while reading goes on into the spool as in any outage; an asset another
  collector took meanwhile is given up and left to it.

Run it with ``flask equipment collector``, ``flask services run opcua-collector`` or
``python -m equipment.opcua.collector``. SIGTERM or SIGINT stops it cleanly within a bounded time: it stops
reading, writes what the writer holds (or spools it if the database is unreachable), records the stop as
the start of a ``collector_restart`` gap, closes the OPC UA sessions, releases its locks and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db import lock_key, make_engine, utcnow
from equipment.models import Asset, Tag
from equipment.opcua.service import STOP_SIGNALS, run_until_signalled
from equipment.opcua.writer import TelemetryWriter
from equipment.models import RECEIPT_TIME, SERVER_TIME, TIME_SOURCE
from equipment.telemetry import GapEvent, Heartbeat, SampleIn, SubscriptionRevision, to_us

log = logging.getLogger("equipment.collector")

# Bounds of the collector's timing options: below them a server is flooded, above them data is late.
PUBLISHING_MS_RANGE = (50.0, 60_000.0)
RECONNECT_S_RANGE = (0.1, 300.0)
RELOAD_S_RANGE = (1.0, 3600.0)
LOCK_CHECK_S_RANGE = (0.1, 60.0)
# The server sends a keep-alive after this long without data: the heartbeat that runs alarm delays on the
# clock and shows "connection alive", so it bounds how late an alarm on a steady value can be.
KEEPALIVE_S = 0.5
# OPC UA's null DateTime (1601-01-01, FILETIME 0): "no timestamp", never a time.
# Sampling interval asked for each tag: 0 = the fastest the server samples (it revises it to what it can).
SAMPLING_INTERVAL_MS = 0.0
NULL_OPC_DATETIME_US = to_us(datetime(1601, 1, 1, tzinfo=timezone.utc))
# Lock connection: a cut network must fail a check within seconds, not after the kernel's TCP retries.
LOCK_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                     "keepalives_count": 3, "tcp_user_timeout": 10_000}


def keepalive_count(publishing_interval_ms: float, stale_after: float) -> int:
    """RequestedMaxKeepAliveCount for a keep-alive at least every KEEPALIVE_S (and well inside the stale limit).

    When that is one publishing interval or less, 0 is asked for: the standard has the server revise it to the
    smallest count it supports (1: a keep-alive after each empty publishing interval). Asking 1 lets a server
    that counts past the limit (asyncua sends once more than count empty intervals have passed) wait longer.
    """
    wanted = math.ceil(min(KEEPALIVE_S, stale_after / 4) * 1000 / publishing_interval_ms)
    return 0 if wanted <= 1 else wanted


@dataclass(frozen=True)
class TagPoint:
    tag_id: int
    asset_id: int
    node_id: str


@dataclass
class EndpointConfig:
    """The tags one client reads: everything behind one endpoint with the same security and user."""

    url: str
    security_policy: str
    security_mode: str
    username: str | None
    password: str | None
    asset_ids: set[int] = field(default_factory=set)
    tags: list[TagPoint] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.url, self.security_policy, self.security_mode, self.username)

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.key, self.password, tuple(sorted((t.tag_id, t.node_id) for t in self.tags)))


def load_endpoints(sess: Session, asset_ids: set[int] | None = None) -> dict[tuple, EndpointConfig]:
    """Group the active tags of connected assets by endpoint."""
    from equipment.opcua.security import password_for

    endpoints: dict[tuple, EndpointConfig] = {}
    assets = sess.execute(select(Asset).where(Asset.endpoint_url.is_not(None))).scalars()
    for asset in assets:
        if asset_ids is not None and asset.id not in asset_ids:
            continue
        tags = [t for t in sess.execute(select(Tag).where(Tag.asset_id == asset.id, Tag.active.is_(True))
                                        .order_by(Tag.id)).scalars()]
        if not tags:
            continue
        config = EndpointConfig(asset.endpoint_url, asset.security_policy, asset.security_mode, asset.opc_username,
                                password_for(asset.code, asset.opc_password_encrypted) if asset.opc_username else None)
        config = endpoints.setdefault(config.key, config)
        config.asset_ids.add(asset.id)
        config.tags.extend(TagPoint(t.id, asset.id, t.node_id) for t in tags)
    return endpoints


# The advisory locks this connection holds, as (high, low) 32-bit halves of each 64-bit key.
HELD_LOCKS_SQL = text("SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
                      "AND objsubid = 1 AND granted AND pid = pg_backend_pid()")


def asset_lock_key(asset_id: int) -> int:
    return lock_key(f"equipment-collector-asset-{asset_id}")


def _key_halves(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: classid holds the high 32 bits, objid the low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class AssetLocks:
    """Only one collector writes for an asset: advisory locks on PostgreSQL, file locks on SQLite.

    The PostgreSQL locks live as long as one dedicated connection: if it drops (database restart,
    network cut, terminated backend) they are gone without notice, so ``held()`` asks the database
    which of them this connection still holds, and forgets the rest."""

    def __init__(self, database_url: str, engine: Any):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._files: dict[int, int] = {}
        self._conn: Any = None
        self._guard = threading.Lock()  # one connection, used from worker threads one at a time
        if not self.postgres:
            database = engine.url.database or "memory"
            self.directory = Path(database).resolve().parent if database not in ("", ":memory:") else Path(".")

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend holding the locks (None without a lock connection)."""
        if self._conn is None:
            return None
        return self._conn.connection.dbapi_connection.info.backend_pid

    def acquire(self, asset_id: int) -> bool:
        with self._guard:
            if asset_id in self._files:
                return True
            if self.postgres:
                return self._acquire_advisory(asset_id)
            return self._acquire_file(asset_id)

    def _acquire_advisory(self, asset_id: int) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": asset_lock_key(asset_id)}).scalar_one()
        except Exception:
            # the lock connection is gone, and every lock it held with it: the next held() reports them lost
            self._drop_connection()
            raise
        if got:
            self._files[asset_id] = -1
        return bool(got)

    def _acquire_file(self, asset_id: int) -> bool:
        name = Path(self.engine.url.database or "nkmes").name
        path = self.directory / f".{name}.collector-asset-{asset_id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._files[asset_id] = fd
        return True

    def held(self) -> set[int]:
        """The assets whose lock is held now, checked on the lock connection itself; never raises."""
        with self._guard:
            if not self.postgres:
                return set(self._files)  # a file lock lasts as long as this process
            if not self._files:
                return set()
            if self._conn is None:
                self._files.clear()
                return set()
            try:
                rows = self._conn.execute(HELD_LOCKS_SQL).all()
            except Exception as exc:
                log.warning("the collector's lock connection is gone: %s",
                            (str(exc).strip().splitlines() or [type(exc).__name__])[0])
                self._drop_connection()
                return set()
            on_server = {(int(high), int(low)) for high, low in rows}
            for asset_id in [a for a in self._files if _key_halves(asset_lock_key(a)) not in on_server]:
                del self._files[asset_id]
            return set(self._files)

    def _drop_connection(self) -> None:
        """Forget a lock connection that failed, and the locks it held; never reuse it."""
        self._files.clear()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # already broken: nothing more to close
            pass

    def release_all(self) -> None:
        with self._guard:
            for fd in self._files.values():
                if fd >= 0:
                    os.close(fd)
            self._files.clear()
            if self._conn is None:
                return
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except Exception as exc:  # the connection is gone, and its locks with it
                log.info("lock connection already closed at release: %s", type(exc).__name__)
            finally:
                self._drop_connection()  # never hand a connection that held locks back to the pool


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _datetime_us(value: datetime | None) -> int | None:
    """UTC microseconds of an OPC UA DateTime; None for a missing or null one (1601-01-01 or earlier)."""
    if value is None:
        return None
    if value.tzinfo is None:  # asyncua decodes OPC UA DateTime as naive UTC
        value = value.replace(tzinfo=timezone.utc)
    us = to_us(value)
    return None if us <= NULL_OPC_DATETIME_US else us


def time_used(source_us: int | None, server_us: int | None, receipt_us: int) -> tuple[int, int]:
    """The time a sample is stored at, and which clock it came from: source, else server, else receipt."""
    if source_us is not None:
        return source_us, TIME_SOURCE
    if server_us is not None:
        return server_us, SERVER_TIME
    return receipt_us, RECEIPT_TIME


def _iso_z(value: datetime) -> str:
    """A UTC time as ISO 8601 with a Z, whether asyncua gave it naive or aware."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


MAX_REPUBLISH = 100  # at most this many missed notifications are asked for again at once


async def republish(uaclient: Any, subscription_id: int, sequence: int) -> Any:
    """OPC UA Republish: the notification message ``sequence`` again, or None when the server no longer has it."""
    from asyncua import ua
    from asyncua.ua.ua_binary import struct_from_binary

    request = ua.RepublishRequest()
    request.Parameters = ua.RepublishParameters(SubscriptionId=subscription_id, RetransmitSequenceNumber=sequence)
    try:
        data = await uaclient.protocol.send_request(request)
        response = struct_from_binary(ua.RepublishResponse, data)
        response.ResponseHeader.ServiceResult.check()
    except Exception as exc:  # BadMessageNotAvailable, or the server does not support Republish
        log.info("Republish of notification %d refused: %s", sequence, exc)
        return None
    message = response.NotificationMessage
    if message.SequenceNumber != sequence or not message.NotificationData:
        return None
    return message


class StaleSubscription(ConnectionError):
    """No notification or keep-alive within the stale limit: resubscribe on a new connection."""


class EndpointSession:
    """One OPC UA client: connect, subscribe, watch, and on any loss record a gap and reconnect."""

    def __init__(self, config: EndpointConfig, writer: TelemetryWriter, *, publishing_interval_ms: float,
                 reconnect_delay: float, stale_after: float, connect_timeout: float):
        self.config = config
        self.writer = writer
        self.publishing_interval_ms = publishing_interval_ms
        self.reconnect_delay = reconnect_delay
        self.stale_after = stale_after
        self.connect_timeout = connect_timeout
        self.by_node: dict[str, list[TagPoint]] = {}
        for tag in config.tags:
            self.by_node.setdefault(tag.node_id, []).append(tag)
        self.server_started: datetime | None = None
        self.connected = False
        self.connections = 0
        self.last_publish = time.monotonic()
        self.last_sequence: int | None = None
        self.resumed = False
        self.receipt_us: int | None = None  # when the publish response being handled arrived
        self.last_alive_us: int | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def record_stop(self) -> None:
        """Monitoring ends now, not at the last stored value: the gap starts here (closed by data after a start)."""
        self._gap("collector_restart", "collector stopped; values after this were not collected")

    def _gap(self, cause: str, detail: str, action: str = "open", at_us: int | None = None) -> None:
        now = to_us(utcnow()) if at_us is None else at_us
        for asset_id in sorted(self.config.asset_ids):
            self.writer.submit(GapEvent(asset_id, cause, now, detail, None, action))

    # --- notifications (event loop; only hands items to the writer's queue) -----------------------
    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        points = self.by_node.get(node.nodeid.to_string())
        if not points or self._stop.is_set():  # a stopped session (e.g. its asset's lock was lost) writes nothing
            return
        dv = data.monitored_item.Value
        status = dv.StatusCode.value if dv.StatusCode is not None else 0
        server_us = _datetime_us(dv.ServerTimestamp)
        at_us, source = time_used(_datetime_us(dv.SourceTimestamp), server_us, self.receipt_us or to_us(utcnow()))
        for point in points:
            self.writer.submit(SampleIn(point.tag_id, at_us, server_us, _as_float(val), status, source))

    def after_publish(self, message: Any) -> None:
        """After a publish response's values were handed on: data after a (re)subscribe ends the open gaps
        (at the first value stored after each gap began, else now); then a heartbeat for every asset."""
        if self._stop.is_set():
            return
        receipt = self.receipt_us or to_us(utcnow())
        if message.NotificationData and not self.resumed:
            self.resumed = True
            self._gap("connection_lost", "data received", action="close", at_us=receipt)
        if not self.resumed:
            return
        self.last_alive_us = receipt
        server_us = _datetime_us(getattr(message, "PublishTime", None))
        for asset_id in sorted(self.config.asset_ids):
            self.writer.submit(Heartbeat(asset_id, receipt, server_us))

    def status_change_notification(self, status: Any) -> None:
        from asyncua import ua

        code = getattr(status, "Status", status)
        if getattr(code, "value", None) == ua.StatusCodes.BadShutdown:
            return  # the connection itself was lost: recorded as connection_lost by the reconnect loop
        self._gap("stale_subscription", f"subscription status {code}")

    def missing_sequences(self, message: Any) -> list[int]:
        """The sequence numbers between the last message received and this one (none were received)."""
        if self.last_sequence is None:
            return []
        return list(range(self.last_sequence + 1, message.SequenceNumber))[-MAX_REPUBLISH:]

    def on_publish(self, message: Any, recovered: Iterable[int] = ()) -> None:
        """Check the notification sequence: a number neither received nor recovered by Republish is a gap."""
        self.last_publish = time.monotonic()
        sequence = message.SequenceNumber
        has_data = bool(message.NotificationData)
        if self.last_sequence is not None:
            expected = self.last_sequence + 1
            lost = [n for n in range(expected, sequence) if n not in set(recovered)]
            if lost:
                # the lost notifications came after the previous response: the gap starts there
                span = f"{lost[0]} to {lost[-1]}" if len(lost) > 1 else f"{lost[0]}"
                self._gap("missed_sequence", f"notifications {span} not received"
                          + (f" ({len(set(recovered))} recovered by Republish)" if recovered else ""),
                          at_us=self.last_alive_us)
        if has_data:
            self.last_sequence = sequence
        elif self.last_sequence is not None and sequence > self.last_sequence + 1:
            self.last_sequence = sequence - 1

    def _record_revisions(self, nodes: list[Any], results: list[Any], created: Any) -> None:
        """Log and keep, per tag, the sampling and publishing intervals asked for and those the server granted."""
        revised_publishing = getattr(created, "RevisedPublishingInterval", None)
        now = to_us(utcnow())
        for node, result in zip(nodes, results):
            good = result.StatusCode.is_good()
            revised_sampling = float(result.RevisedSamplingInterval) if good else None
            node_id = node.nodeid.to_string()
            if revised_sampling != SAMPLING_INTERVAL_MS or revised_publishing != self.publishing_interval_ms:
                log.info("%s %s: sampling interval %g ms requested, %s granted; publishing interval %g ms "
                         "requested, %s granted", self.config.url, node_id, SAMPLING_INTERVAL_MS,
                         "none" if revised_sampling is None else f"{revised_sampling:g} ms", self.publishing_interval_ms,
                         "none" if revised_publishing is None else f"{revised_publishing:g} ms")
            for point in self.by_node.get(node_id, []):
                self.writer.submit(SubscriptionRevision(
                    point.tag_id, now, SAMPLING_INTERVAL_MS, revised_sampling, self.publishing_interval_ms,
                    None if revised_publishing is None else float(revised_publishing),
                    None if good else str(result.StatusCode.name)))

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection: record it, then reconnect
                if self._stop.is_set():
                    break
                log.warning("OPC UA %s: %s", self.config.url, exc or type(exc).__name__)
                if not isinstance(exc, StaleSubscription):  # that gap is already recorded with its cause
                    # not assured since the server was last heard, not only since the loss was noticed
                    self._gap("connection_lost", f"{self.config.url}: {type(exc).__name__} {exc}".strip(),
                              at_us=self.last_alive_us if self.resumed else None)
            self.connected = False
            try:
                await asyncio.wait_for(self._stop.wait(), self.reconnect_delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self) -> None:
        from asyncua import Client, ua
        from asyncua.common.subscription import Subscription

        from equipment.opcua.security import apply_security

        session = self

        class SequencedSubscription(Subscription):
            async def publish_callback(self, publish_result: ua.PublishResult) -> None:
                session.receipt_us = to_us(utcnow())
                message = publish_result.NotificationMessage
                recovered = []
                for number in session.missing_sequences(message):
                    # the server keeps what it sent until acknowledged: ask again for what never arrived
                    again = await republish(self.server, self.subscription_id, number)
                    if again is not None:
                        recovered.append(number)
                        replay = ua.PublishResult()
                        replay.SubscriptionId, replay.NotificationMessage = self.subscription_id, again
                        await super().publish_callback(replay)
                if recovered:
                    log.info("%s: notification(s) %s recovered by Republish", session.config.url,
                             ", ".join(map(str, recovered)))
                session.on_publish(message, recovered)
                await super().publish_callback(publish_result)
                session.after_publish(message)

        class RevisionRecorder:
            """The client as the subscription sees it, keeping what the server revised each monitored item to."""

            def __init__(self, uaclient: Any):
                self._uaclient = uaclient
                self.results: list[Any] = []

            def __getattr__(self, name: str) -> Any:
                return getattr(self._uaclient, name)

            async def create_monitored_items(self, params: Any) -> Any:
                results = await self._uaclient.create_monitored_items(params)
                self.results.extend(results)
                return results

        client = Client(self.config.url, timeout=self.connect_timeout,
                        watchdog_intervall=max(self.publishing_interval_ms / 1000, 0.2))
        await apply_security(client, self.config.security_policy, self.config.security_mode)
        if self.config.username:
            client.set_user(self.config.username)
            client.set_password(self.config.password or "")
        try:
            await asyncio.wait_for(client.connect(), self.connect_timeout * 2)
        except BaseException:  # refused, timed out, or cancelled by a stop: leave no socket open
            client.disconnect_socket()
            raise
        try:
            started = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_StartTime)).read_value()
            if self.server_started is not None and started != self.server_started:
                self._gap("server_restart", f"server restarted at {_iso_z(started)}", action="cause")
            self.server_started = started
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=self.publishing_interval_ms, RequestedLifetimeCount=10000,
                # a keep-alive at least every KEEPALIVE_S: the heartbeat (well inside the stale limit)
                RequestedMaxKeepAliveCount=keepalive_count(self.publishing_interval_ms, self.stale_after),
                MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
            recorder = RevisionRecorder(client.uaclient)
            subscription = SequencedSubscription(recorder, params, self)
            created = await subscription.init()
            self.last_sequence = None
            self.resumed = False
            nodes = [client.get_node(node_id) for node_id in self.by_node]
            results = await subscription.subscribe_data_change(nodes, queuesize=1000,
                                                                sampling_interval=SAMPLING_INTERVAL_MS)
            for node, outcome in zip(nodes, results if isinstance(results, list) else [results]):
                if isinstance(outcome, ua.StatusCode):
                    log.warning("cannot subscribe to %s: %s", node.nodeid.to_string(), outcome)
            self._record_revisions(nodes, recorder.results, created)
            self.connected = True
            self.connections += 1
            log.info("subscribed to %d variable(s) at %s", len(nodes), self.config.url)
            self.last_publish = time.monotonic()
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), min(0.25, self.stale_after / 4))
                except asyncio.TimeoutError:
                    pass
                await client.check_connection()
                if time.monotonic() - self.last_publish > self.stale_after:
                    self._gap("stale_subscription", f"no notification or keep-alive for {self.stale_after:.0f} s",
                              at_us=self.last_alive_us)
                    raise StaleSubscription("subscription stale")
        finally:
            self.connected = False
            try:
                await asyncio.wait_for(client.disconnect(), 2)
            except Exception:  # the connection is already gone; nothing to close politely
                client.disconnect_socket()


class Collector:
    """Loads the connected assets, takes their locks, runs one EndpointSession per endpoint."""

    def __init__(self, database_url: str, *, spool_path: str | Path, asset_codes: list[str] | None = None,
                 publishing_interval_ms: float = 500, reconnect_delay: float = 2.0, stale_after: float | None = None,
                 connect_timeout: float = 4.0, reload_interval: float = 30.0, writer_options: dict | None = None,
                 shutdown_timeout: float = 30.0, lock_check_interval: float = 1.0):
        self.database_url = database_url
        # a database host that does not answer must not hold up a start, a lock check or a stop for minutes
        postgres = database_url.startswith(("postgresql://", "postgresql+psycopg://"))
        self.engine = make_engine(database_url, **({"connect_args": dict(LOCK_CONNECT_ARGS)} if postgres else {}))
        self.asset_codes = [c.upper() for c in asset_codes] if asset_codes else None
        self.publishing_interval_ms = publishing_interval_ms
        self.reconnect_delay = reconnect_delay
        self.stale_after = stale_after or max(10.0, publishing_interval_ms / 1000 * 20)
        self.connect_timeout = connect_timeout
        self.reload_interval = reload_interval
        self.lock_check_interval = min(lock_check_interval, reload_interval)
        self.shutdown_timeout = shutdown_timeout
        self.writer = TelemetryWriter(database_url, spool_path, **(writer_options or {}))
        self.locks = AssetLocks(database_url, self.engine)
        self.sessions: dict[tuple, tuple[EndpointSession, asyncio.Task]] = {}
        self.locked_assets: set[int] = set()
        self.refused_assets: set[int] = set()
        self.lost_assets: dict[int, str] = {}  # lock lost, not yet re-acquired: asset -> why
        self.locks_lost = 0  # times a lock check found locks gone
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.stopped_cleanly = False

    def _load(self) -> dict[tuple, EndpointConfig]:
        """Read the configuration (in a worker thread), taking the lock of each newly seen asset."""
        with Session(self.engine) as sess:
            wanted: set[int] | None = None
            if self.asset_codes is not None:
                wanted = set(sess.execute(select(Asset.id).where(Asset.code.in_(self.asset_codes))).scalars())
            endpoints = load_endpoints(sess, wanted)
            configured = set().union(*(c.asset_ids for c in endpoints.values()))
            for asset_id in set(self.lost_assets) - configured:  # no longer collected here: nothing to re-acquire
                del self.lost_assets[asset_id]
            for config in endpoints.values():
                for asset_id in sorted(config.asset_ids):
                    if asset_id in self.locked_assets:
                        continue
                    if not self.locks.acquire(asset_id):
                        if asset_id in self.lost_assets:
                            # reading it stops here (the configuration below leaves it out); what this collector
                            # read meanwhile is written, and the other collector records its own start gap
                            del self.lost_assets[asset_id]
                            log.warning("asset %s was taken by another collector while this one had lost its lock; "
                                        "left to it", asset_id)
                        elif asset_id not in self.refused_assets:
                            log.warning("asset %s is collected by another collector; skipped", asset_id)
                        self.refused_assets.add(asset_id)
                        continue
                    self.locked_assets.add(asset_id)
                    self.refused_assets.discard(asset_id)
                    if asset_id in self.lost_assets:  # read all along: no values were missed, so no gap
                        why = self.lost_assets.pop(asset_id)
                        log.warning("asset %s: lock re-acquired on a new connection (%s)", asset_id, why)
                    else:
                        self._announce_restart(sess, asset_id)
                config.asset_ids &= self.locked_assets
                config.tags = [t for t in config.tags if t.asset_id in self.locked_assets]
            return {k: c for k, c in endpoints.items() if c.tags}

    async def _check_locks(self) -> None:
        """Notice every asset whose lock is no longer held, so that the next load (at the next check) takes it
        again on a new connection.

        Reading goes on meanwhile: a lock connection usually drops because the database restarted or the
        network was cut, and then the values go to the spool and are written when the database is back, as
        in any outage. Only an asset that another collector took in between is given up, at that load."""
        if not self.locked_assets:
            return
        held = await asyncio.to_thread(self.locks.held)
        lost = self.locked_assets - held
        if not lost:
            return
        self.locks_lost += 1
        why = "lock connection dropped" if not held else "lock released on the database"
        log.warning("lost the lock of asset(s) %s (%s): taking it again; still reading",
                    ", ".join(map(str, sorted(lost))), why)
        self.locked_assets -= lost
        for asset_id in lost:
            self.lost_assets.setdefault(asset_id, why)

    def _announce_restart(self, sess: Session, asset_id: int) -> None:
        """Whatever arrived after monitoring was last assured and before now was not collected: a gap. The
        writer fixes its start when it gets there, after the spool left by the previous run is written."""
        self.writer.submit(GapEvent(asset_id, "collector_restart", to_us(utcnow()),
                                    "collector started; values after the last stored sample were not collected",
                                    None, "restart"))

    def request_stop(self, why: str = "stop requested") -> None:
        """Ask the running collector to stop (from its own event loop, e.g. a signal handler)."""
        if self._stop_requested:
            log.info("%s: already stopping", why)
            return
        self._stop_requested = True
        log.info("%s: stopping; writing what was received", why)
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self.writer.start()
        next_load, load_failing = 0.0, False
        try:
            while not self._stop.is_set():
                # a lost lock is re-acquired at the next check, not only at the next reload
                if time.monotonic() >= next_load or self.lost_assets:
                    next_load = time.monotonic() + self.reload_interval
                    try:
                        endpoints = await asyncio.to_thread(self._load)
                    except Exception as exc:  # the database is down at start or reload: keep what runs
                        # retried at each lock check while a lock is to be re-acquired: say it once per outage
                        (log.debug if load_failing else log.warning)("cannot read equipment configuration: %s", exc)
                        load_failing, endpoints = True, None
                    else:
                        load_failing = False
                    if endpoints is not None and not self._stop.is_set():
                        self._apply(endpoints)
                    self.ready.set()
                try:
                    await asyncio.wait_for(self._stop.wait(), self.lock_check_interval)
                except asyncio.TimeoutError:
                    pass
                if not self._stop.is_set():
                    await self._check_locks()
        finally:
            await self._shut_down()

    async def _shut_down(self) -> None:
        """Stop reading, close the OPC UA sessions, write or spool what was received, release the locks."""
        monitored = [s for s, _t in self.sessions.values() if s.connected and s.resumed]
        for session, _task in self.sessions.values():
            session.stop()
        for _session, task in self.sessions.values():
            task.cancel()
        await asyncio.gather(*(t for _s, t in self.sessions.values()), return_exceptions=True)
        for session in monitored:
            session.record_stop()
        finished = await asyncio.to_thread(self.writer.stop, self.shutdown_timeout)
        self.locks.release_all()
        self.engine.dispose()
        self.stopped_cleanly = finished
        log.info("collector stopped: %d value(s) written, %s item(s) waiting in the spool, %d set aside as rejected",
                 self.writer.written, "unknown" if self.writer.left_in_spool is None else self.writer.left_in_spool,
                 self.writer.rejected)

    def _apply(self, endpoints: dict[tuple, EndpointConfig]) -> None:
        for key in list(self.sessions):
            session, task = self.sessions[key]
            if key not in endpoints or endpoints[key].signature != session.config.signature:
                session.stop()
                task.cancel()
                del self.sessions[key]
        for key, config in endpoints.items():
            if key in self.sessions:
                continue
            session = EndpointSession(config, self.writer, publishing_interval_ms=self.publishing_interval_ms,
                                      reconnect_delay=self.reconnect_delay, stale_after=self.stale_after,
                                      connect_timeout=self.connect_timeout)
            self.sessions[key] = (session, asyncio.create_task(session.run()))

    # --- running in a thread (tests, services) -------------------------------------------------
    def start_in_thread(self) -> "Collector":
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="opcua-collector", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 35.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self.request_stop, "stop called")
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def connected(self) -> bool:
        return bool(self.sessions) and all(s.connected for s, _t in self.sessions.values())


def default_spool_path(database_url: str) -> Path:
    from config import _instance_dir

    return Path(os.environ.get("COLLECTOR_SPOOL") or _instance_dir() / "collector-spool.sqlite3")


def run_until_stopped(collector: Collector, stop_signals: Iterable[signal.Signals] = STOP_SIGNALS) -> None:
    """Run the collector until one of ``stop_signals`` arrives, then stop it cleanly (see the module doc)."""
    run_until_signalled(collector.run, collector.request_stop, stop_signals)


def bounded(low: float, high: float, what: str) -> Any:
    """An argparse type: a number between low and high, or a message that says so."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not (math.isfinite(number) and low <= number <= high):
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}, not {text}")
        return number

    return parse


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: run the collector until SIGTERM or SIGINT, then stop cleanly and return."""
    from config import Config

    parser = argparse.ArgumentParser(description="NK MES OPC UA collector")
    parser.add_argument("--database-url", default=Config.DATABASE_URL)
    parser.add_argument("--spool", default=None, help="spool file (default instance/collector-spool.sqlite3)")
    parser.add_argument("--assets", default=None, help="comma-separated asset codes (default: all connected)")
    parser.add_argument("--publishing-ms", type=bounded(*PUBLISHING_MS_RANGE, "the publishing interval (ms)"),
                        default=os.environ.get("COLLECTOR_PUBLISHING_MS", "500"))
    parser.add_argument("--reconnect-delay", type=bounded(*RECONNECT_S_RANGE, "the reconnect delay (s)"),
                        default=os.environ.get("COLLECTOR_RECONNECT_S", "2"))
    parser.add_argument("--reload-interval", type=bounded(*RELOAD_S_RANGE, "the reload interval (s)"),
                        default=os.environ.get("COLLECTOR_RELOAD_S", "30"))
    parser.add_argument("--lock-check-interval", type=bounded(*LOCK_CHECK_S_RANGE, "the lock check interval (s)"),
                        default=os.environ.get("COLLECTOR_LOCK_CHECK_S", "1"),
                        help="longest the collector writes without knowing it still holds its assets' locks")
    parser.add_argument("--flush-interval", type=bounded(0.01, 60.0, "the writer's flush interval (s)"),
                        default=os.environ.get("COLLECTOR_FLUSH_S", "0.2"),
                        help="longest a received value waits before its batch is written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s collector %(levelname)s %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    collector = Collector(args.database_url, spool_path=args.spool or default_spool_path(args.database_url),
                          asset_codes=args.assets.split(",") if args.assets else None,
                          publishing_interval_ms=args.publishing_ms, reconnect_delay=args.reconnect_delay,
                          reload_interval=args.reload_interval, lock_check_interval=args.lock_check_interval,
                          writer_options={"flush_interval": args.flush_interval})
    try:
        run_until_stopped(collector)
    except KeyboardInterrupt:  # an interrupt before the handlers were installed: nothing was running yet
        return
    if not collector.stopped_cleanly:  # the writer was still busy at the time limit: tell the service manager
        raise SystemExit(1)


if __name__ == "__main__":
    main()
