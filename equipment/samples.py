"""Where telemetry samples live, behind one read interface: a recent window as rows of
``telemetry_sample`` (written by the collector), older samples in per-tag, per-hour compressed chunks
(``telemetry_chunk``, lossless, hashed). Charts, raw reads, latest values, gap and alarm review and the
batch record read through ``read_samples``, ``latest_sample`` and ``newest_source_us`` and never need
to know which of the two holds a sample, or that a window spans both.

Compaction (``compact_next_chunk``, run by ``run_compaction``) moves whole hours older than the recent
window into chunks, one transaction per chunk; a late sample for an hour already compacted is merged
into its chunk on the next run. Retention follows the batch records: ``purge_telemetry`` refuses while
an occupancy of the asset covers the period, and database triggers refuse the same deletes.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.audit import record_event
from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from equipment import chunks
from equipment.chunks import Sample
from equipment.models import CHUNK_SPAN_US, AssetUsage, Tag, TelemetryChunk, TelemetryRollup, TelemetrySample

log = logging.getLogger(__name__)

US_PER_MINUTE = 60_000_000
UNCERTAIN_MASK = 0x40000000
# Samples newer than this stay rows: the collector's writer and the live pages work on them.
DEFAULT_RECENT_WINDOW = timedelta(hours=2)
MIN_RECENT_WINDOW = timedelta(hours=1)
_ROW_COLUMNS = (TelemetrySample.tag_id, TelemetrySample.source_us, TelemetrySample.server_us,
                TelemetrySample.value, TelemetrySample.status_code, TelemetrySample.time_source)


def _to_sample(row: Any) -> Sample:
    return Sample(row[0], row[1], row[2], row[3], row[4], row[5])


def _chunks_overlapping(sess: Session, tag_id: int, start_us: int, end_us: int) -> Any:
    c = TelemetryChunk  # columns, not objects: what is stored now, not a copy cached in the session
    return (select(c.payload, c.first_us, c.last_us).where(c.tag_id == tag_id, c.start_us < end_us, c.start_us > start_us - CHUNK_SPAN_US,
                            c.end_us > start_us).order_by(c.start_us))


def read_samples(sess: Session, tag_id: int, start_us: int, end_us: int, limit: int | None = None) -> list[Sample]:
    """Every sample of a tag with source time in [start_us, end_us), oldest first, from rows and chunks."""
    rows_stmt = (select(*_ROW_COLUMNS).where(TelemetrySample.tag_id == tag_id, TelemetrySample.source_us >= start_us,
                                             TelemetrySample.source_us < end_us).order_by(TelemetrySample.source_us))
    if limit:
        rows_stmt = rows_stmt.limit(limit)
    rows = [_to_sample(r) for r in sess.execute(rows_stmt)]
    from_chunks: list[Sample] = []
    for chunk in sess.execute(_chunks_overlapping(sess, tag_id, start_us, end_us)):
        decoded = chunks.decode(chunk.payload, tag_id)
        if chunk.first_us < start_us or chunk.last_us >= end_us:
            decoded = [s for s in decoded if start_us <= s.source_us < end_us]
        from_chunks.extend(decoded)
        if limit and len(from_chunks) >= limit:
            break
    if not from_chunks:
        return rows
    if rows:
        # a late sample may sit in rows until the next compaction merges it; the chunk's copy wins
        in_chunks = {s.source_us for s in from_chunks}
        merged = sorted([*from_chunks, *(r for r in rows if r.source_us not in in_chunks)], key=lambda s: s.source_us)
    else:
        merged = from_chunks
    return merged[:limit] if limit else merged


def window_has_chunks(sess: Session, tag_id: int, start_us: int, end_us: int) -> bool:
    c = TelemetryChunk
    return sess.execute(select(c.start_us).where(c.tag_id == tag_id, c.start_us < end_us,
                                                 c.start_us > start_us - CHUNK_SPAN_US, c.end_us > start_us)
                        .limit(1)).first() is not None


def latest_sample(sess: Session, tag_id: int) -> Sample | None:
    """The newest sample of a tag (a row, or the last sample of its newest chunk)."""
    row = sess.execute(select(*_ROW_COLUMNS).where(TelemetrySample.tag_id == tag_id)
                       .order_by(TelemetrySample.source_us.desc()).limit(1)).first()
    chunk = sess.execute(select(TelemetryChunk.payload, TelemetryChunk.last_us).where(TelemetryChunk.tag_id == tag_id)
                         .order_by(TelemetryChunk.start_us.desc()).limit(1)).first()
    if chunk is None or (row is not None and row[1] > chunk.last_us):
        return _to_sample(row) if row is not None else None
    return chunks.decode(chunk.payload, tag_id)[-1]


def newest_source_us(sess: Session, tag_id: int) -> int | None:
    """Source time of the newest sample of a tag, wherever it is stored."""
    in_rows = sess.execute(select(func.max(TelemetrySample.source_us))
                           .where(TelemetrySample.tag_id == tag_id)).scalar_one_or_none()
    in_chunks = sess.execute(select(func.max(TelemetryChunk.last_us))
                             .where(TelemetryChunk.tag_id == tag_id)).scalar_one_or_none()
    known = [v for v in (in_rows, in_chunks) if v is not None]
    return max(known) if known else None


def bucket_samples(samples: Sequence[Sample], origin_us: int, width_us: int) -> list[tuple[int, float, float, float, int]]:
    """(bucket, min, max, sum, count) of the good-quality, finite values of time-ordered samples, per
    bucket of ``width_us``."""
    isfinite = math.isfinite
    good = [s for s in samples if s[3] is not None and s[4] < UNCERTAIN_MASK and isfinite(s[3])]
    times = [s[1] for s in good]
    values = [s[3] for s in good]
    out = []
    i = 0
    while i < len(times):
        b = (times[i] - origin_us) // width_us
        j = bisect_left(times, origin_us + (b + 1) * width_us, i)
        vals = values[i:j]
        out.append((b, min(vals), max(vals), sum(vals), j - i))
        i = j
    return out


# --- compaction ------------------------------------------------------------------------------------

class CompactionRefused(Conflict):
    """One tag's hour could not be compacted; the others can."""

    def __init__(self, message: str, tag_id: int):
        super().__init__(message)
        self.tag_id = tag_id


@dataclass
class ChunkWritten:
    tag_id: int
    start_us: int
    sample_count: int
    merged: bool


def compaction_cutoff_us(now: datetime, recent_window: timedelta) -> int:
    """Hours that end at or before this time may be compacted: everything older than the recent window."""
    from equipment.telemetry import to_us

    if recent_window < MIN_RECENT_WINDOW:
        raise ValidationFailed(f"The recent window kept as rows must be at least {MIN_RECENT_WINDOW}; "
                               f"{recent_window} would compact samples the collector is still writing.",
                               errors={"recent_window": [f"At least {MIN_RECENT_WINDOW}."]})
    return (to_us(now - recent_window) // CHUNK_SPAN_US) * CHUNK_SPAN_US


def _rollup_upsert(dialect: str) -> Any:
    table = TelemetryRollup.__table__
    stmt = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
    return stmt.on_conflict_do_update(index_elements=["tag_id", "minute"], set_={
        "min_value": stmt.excluded.min_value, "max_value": stmt.excluded.max_value,
        "mean_value": stmt.excluded.mean_value, "sample_count": stmt.excluded.sample_count})


def compact_next_chunk(sess: Session, cutoff_us: int, tag_ids: Sequence[int] | None = None) -> ChunkWritten | None:
    """Move the oldest hour of rows of one tag older than ``cutoff_us`` into its chunk (merging into the
    chunk if that hour was compacted before). Flushes, never commits; None when nothing is left."""
    if cutoff_us % CHUNK_SPAN_US:
        raise ValueError("the compaction cutoff must fall on a chunk boundary")
    ids = tag_ids if tag_ids is not None else sess.execute(select(Tag.id).order_by(Tag.id)).scalars().all()
    for tag_id in ids:
        oldest = sess.execute(select(func.min(TelemetrySample.source_us)).where(
            TelemetrySample.tag_id == tag_id, TelemetrySample.source_us < cutoff_us)).scalar_one_or_none()
        if oldest is not None:
            return _compact_hour(sess, tag_id, (oldest // CHUNK_SPAN_US) * CHUNK_SPAN_US)
    return None


def _compact_hour(sess: Session, tag_id: int, start_us: int) -> ChunkWritten:
    end_us = start_us + CHUNK_SPAN_US
    rows = [_to_sample(r) for r in sess.execute(
        select(*_ROW_COLUMNS).where(TelemetrySample.tag_id == tag_id, TelemetrySample.source_us >= start_us,
                                    TelemetrySample.source_us < end_us).order_by(TelemetrySample.source_us))]
    chunk = sess.get(TelemetryChunk, (tag_id, start_us))
    merged = chunk is not None
    if chunk is not None:
        existing = chunks.decode(chunk.payload, tag_id)
        if chunks.content_hash(tag_id, existing) != chunk.sha256:
            raise CompactionRefused(f"The stored chunk {tag_id}/{start_us} does not match its hash; late samples "
                                    "are not merged into it (see flask equipment verify-telemetry).", tag_id)
        known = {s.source_us for s in existing}
        late = [r for r in rows if r.source_us not in known]
        samples = sorted([*existing, *late], key=lambda s: s.source_us)
    else:
        late = rows
        samples = rows
        chunk = TelemetryChunk(tag_id=tag_id, start_us=start_us, end_us=end_us)
        sess.add(chunk)
    chunk.payload = chunks.encode(samples)
    chunk.sha256 = chunks.content_hash(tag_id, samples)
    chunk.codec = chunks.FORMAT_VERSION
    chunk.first_us, chunk.last_us, chunk.sample_count = samples[0].source_us, samples[-1].source_us, len(samples)
    sess.flush()  # the chunk exists before its rows leave the table (the retention trigger checks it)
    keys = [r.source_us for r in rows]
    deleted = 0
    for i in range(0, len(keys), 5000):
        deleted += sess.execute(delete(TelemetrySample).where(
            TelemetrySample.tag_id == tag_id, TelemetrySample.source_us.in_(keys[i:i + 5000]))
            .execution_options(synchronize_session=False)).rowcount
    if deleted != len(keys):
        raise CompactionRefused(f"Rows of tag {tag_id} changed while they were compacted; nothing was moved.", tag_id)
    if merged and late:
        _rewrite_rollups(sess, tag_id, samples, {s.source_us // US_PER_MINUTE for s in late})
    return ChunkWritten(tag_id, start_us, len(samples), merged)


def _rewrite_rollups(sess: Session, tag_id: int, samples: Sequence[Sample], minutes: set[int]) -> None:
    """Per-minute rollups of the minutes a late sample joined, from all of the minute's samples."""
    values = []
    for minute, lo, hi, total, count in bucket_samples(samples, 0, US_PER_MINUTE):
        if minute in minutes:
            values.append({"tag_id": tag_id, "minute": minute, "min_value": lo, "max_value": hi,
                           "mean_value": total / count, "sample_count": count})
    if values:
        sess.execute(_rollup_upsert(sess.get_bind().dialect.name), values)


@dataclass
class CompactionResult:
    chunks: int = 0
    samples: int = 0
    merged: int = 0
    remaining: bool = False
    failures: list[str] = field(default_factory=list)


def run_compaction(session_factory: Callable[[], Session], now: datetime | None = None,
                   recent_window: timedelta = DEFAULT_RECENT_WINDOW, max_chunks: int = 200) -> CompactionResult:
    """Compact up to ``max_chunks`` chunks, each in its own transaction; safe to rerun or interrupt."""
    from app.audit import Actor, acting_as

    cutoff = compaction_cutoff_us(now or utcnow(), recent_window)
    result = CompactionResult()
    skip: set[int] = set()
    with acting_as(Actor(None, "telemetry-compaction")):
        while result.chunks < max_chunks:
            with session_factory() as sess:
                tag_ids = [t for t in sess.execute(select(Tag.id).order_by(Tag.id)).scalars() if t not in skip]
                try:
                    written = compact_next_chunk(sess, cutoff, tag_ids)
                    if written is None:
                        return result
                    sess.commit()
                except CompactionRefused as exc:
                    sess.rollback()
                    result.failures.append(exc.message)
                    skip.add(exc.tag_id)
                    continue
            result.chunks += 1
            result.samples += written.sample_count
            result.merged += int(written.merged)
        with session_factory() as sess:
            result.remaining = rows_left_to_compact(sess, cutoff, [t for t in sess.execute(select(Tag.id)).scalars()
                                                                   if t not in skip])
    return result


def rows_left_to_compact(sess: Session, cutoff_us: int, tag_ids: Sequence[int]) -> bool:
    return any(sess.execute(select(TelemetrySample.source_us).where(
        TelemetrySample.tag_id == t, TelemetrySample.source_us < cutoff_us).limit(1)).first() for t in tag_ids)


def run_compactor_service(engine_url: str | None = None, interval_s: float = 600.0,
                          stop: threading.Event | None = None) -> None:
    """Compact every ``interval_s`` until stopped (SIGTERM/SIGINT when run as a service)."""
    import signal

    from app.db import make_engine
    from config import Config

    engine: Engine = make_engine(engine_url or Config.DATABASE_URL)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                result = run_compaction(lambda: Session(engine))
                if result.chunks or result.failures:
                    log.info("telemetry compaction: %d chunk(s), %d sample(s), %d merged; %s",
                             result.chunks, result.samples, result.merged, "; ".join(result.failures) or "no failures")
                if result.remaining:
                    continue
            except Exception:  # the database may be away; the next round tries again
                log.exception("telemetry compaction failed")
            stop.wait(interval_s)
    finally:
        engine.dispose()


# --- verification ----------------------------------------------------------------------------------

@dataclass
class TelemetryVerifyResult:
    checked: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_telemetry(sess: Session, batch_size: int = 200) -> TelemetryVerifyResult:
    """Decode every chunk, recompute its hash, and compare it with the stored hash and with the hash the
    audit trail recorded for it; chunks the trail knows of and that are gone are reported too."""
    from app.audit import AuditEntry, write_pending_entries

    sess.flush()
    write_pending_entries(sess)  # this transaction's own chunk entries count too
    audited: dict[str, str | None] = {}
    for record_id, action, changes in sess.execute(
            select(AuditEntry.record_id, AuditEntry.action, AuditEntry.changes)
            .where(AuditEntry.table_name == TelemetryChunk.__tablename__).order_by(AuditEntry.id)):
        if action == "delete":
            audited[record_id] = None
            continue
        change = json.loads(changes).get("sha256")
        if change is not None:
            audited[record_id] = change[1]
    result = TelemetryVerifyResult()
    seen: set[str] = set()
    last: tuple[int, int] = (-1, -1)
    c = TelemetryChunk
    while True:
        batch = sess.execute(select(c.tag_id, c.start_us, c.end_us, c.first_us, c.last_us, c.sample_count, c.payload,
                                    c.sha256)  # columns, not objects: what is stored now, not a cached copy
                             .where((c.tag_id > last[0]) | ((c.tag_id == last[0]) & (c.start_us > last[1])))
                             .order_by(c.tag_id, c.start_us).limit(batch_size)).all()
        if not batch:
            break
        for chunk in batch:
            key = f"{chunk.tag_id}/{chunk.start_us}"
            seen.add(key)
            result.checked += 1
            where = f"chunk {key} (tag {chunk.tag_id}, hour from {_iso(chunk.start_us)})"
            try:
                samples = chunks.decode(chunk.payload, chunk.tag_id)
            except chunks.ChunkError as exc:
                result.problems.append(f"{where}: payload does not decode ({exc})")
                continue
            result.samples += len(samples)
            if chunks.content_hash(chunk.tag_id, samples) != chunk.sha256:
                result.problems.append(f"{where}: samples do not match the chunk's hash (altered)")
            elif audited.get(key) != chunk.sha256:
                result.problems.append(f"{where}: hash differs from the one the audit trail recorded (replaced)")
            if (len(samples) != chunk.sample_count or samples[0].source_us != chunk.first_us
                    or samples[-1].source_us != chunk.last_us
                    or not all(chunk.start_us <= s.source_us < chunk.end_us for s in (samples[0], samples[-1]))):
                result.problems.append(f"{where}: count or time range differs from its samples")
        last = (batch[-1].tag_id, batch[-1].start_us)
    for key, sha in audited.items():
        if sha is not None and key not in seen:
            result.problems.append(f"chunk {key}: recorded in the audit trail but missing (deleted)")
    return result


def _iso(us: int) -> str:
    from equipment.telemetry import from_us

    return from_us(us).isoformat().replace("+00:00", "Z")


# --- retention -------------------------------------------------------------------------------------

@dataclass
class PurgeResult:
    rows: int
    chunks: int


def usages_covering(sess: Session, asset_id: int, start: datetime | None, end: datetime) -> list[AssetUsage]:
    """Occupancies of the asset (batch records and others) overlapping [start, end)."""
    stmt = select(AssetUsage).where(AssetUsage.asset_id == asset_id, AssetUsage.started_at < end)
    if start is not None:
        stmt = stmt.where((AssetUsage.ended_at.is_(None)) | (AssetUsage.ended_at >= start))
    return list(sess.execute(stmt.order_by(AssetUsage.started_at)).scalars())


def purge_telemetry(sess: Session, asset_id: int, before: datetime, reason: str) -> PurgeResult:
    """Delete the asset's samples (rows and whole chunks) older than ``before``: refused while any
    occupancy of the asset overlaps that period, because the records that used it keep its data."""
    from equipment.telemetry import to_us

    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Deleting telemetry needs a reason.", errors={"reason": ["Give the reason."]})
    covering = usages_covering(sess, asset_id, None, before)
    if covering:
        names = ", ".join(f"{u.record_type} {u.record_id}" for u in covering[:5])
        raise Conflict(f"Telemetry before {before.isoformat()} cannot be deleted: {len(covering)} record(s) "
                       f"used this equipment in that period ({names}) and keep its data.")
    bound = (to_us(before) // CHUNK_SPAN_US) * CHUNK_SPAN_US  # whole chunks only
    tag_ids = list(sess.execute(select(Tag.id).where(Tag.asset_id == asset_id)).scalars())
    gone = list(sess.execute(select(TelemetryChunk).where(TelemetryChunk.tag_id.in_(tag_ids),
                                                          TelemetryChunk.end_us <= bound)).scalars())
    for chunk in gone:
        sess.delete(chunk)
    sess.flush()
    rows = sess.execute(delete(TelemetrySample).where(TelemetrySample.tag_id.in_(tag_ids),
                                                      TelemetrySample.source_us < bound)
                        .execution_options(synchronize_session=False)).rowcount
    record_event(sess, "equipment_asset", str(asset_id), "purge",
                 {"before": _iso(bound), "rows": rows, "chunks": len(gone)}, reason=reason)
    return PurgeResult(rows, len(gone))
