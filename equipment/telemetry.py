"""Telemetry: ingest of samples (bulk Core inserts, per-minute rollups, alarms, gaps) and the queries
behind live values, charts and the batch record's window questions."""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import utcnow
from equipment import samples, signals
from equipment.alarms import AlarmEvent, LimitEvaluator
from equipment.models import (Alarm, Asset, Tag, TelemetryGap, TelemetryLink, TelemetryRollup, TelemetrySample,
                              TelemetrySubscription)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US_PER_MINUTE = 60_000_000
UNCERTAIN_MASK = 0x40000000  # OPC UA status severity bits 31-30: 00 good, 01 uncertain, 10 bad


def to_us(value: datetime) -> int:
    """UTC microseconds since the epoch (exact integer arithmetic)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: telemetry times must carry a time zone")
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def is_good(status_code: int) -> bool:
    return status_code < UNCERTAIN_MASK


@dataclass(frozen=True)
class SampleIn:
    """One notification as received: tag, source and server timestamps, value, OPC UA status code."""

    tag_id: int
    source_us: int  # the time used: source, else server, else receipt (``time_source`` says which)
    server_us: int | None
    value: float | None
    status_code: int = 0
    time_source: int = 0


@dataclass(frozen=True)
class GapEvent:
    """Something the collector saw that interrupts monitoring of an asset (or one tag of it).

    ``action`` "open" opens a gap (unless one with the same cause is already open); "cause" re-labels
    the asset's open gap (a reconnect found the server restarted); "close" ends the asset's open gaps
    (data is flowing again) at ``at_us`` or at the first value stored after the gap began, whichever is
    earlier; "restart" opens a gap from the last moment monitoring was assured (the newest stored sample
    or heartbeat, known only once everything spooled before it is written) to ``at_us`` at the latest.
    """

    asset_id: int
    cause: str
    at_us: int
    detail: str | None = None
    tag_id: int | None = None
    action: str = "open"


@dataclass(frozen=True)
class Heartbeat:
    """The server was heard at ``alive_us`` (collector clock): a publish response, with data or a keep-alive.

    ``server_us`` is the server's clock at that moment (the response's PublishTime), when it gave one."""

    asset_id: int
    alive_us: int
    server_us: int | None = None


@dataclass(frozen=True)
class SubscriptionRevision:
    """What the collector asked of the server for one tag's subscription, and what the server granted."""

    tag_id: int
    subscribed_us: int
    requested_sampling_ms: float
    revised_sampling_ms: float | None
    requested_publishing_ms: float
    revised_publishing_ms: float | None
    status: str | None = None


SAMPLE_COLUMNS = ("tag_id", "source_us", "server_us", "value", "status_code", "time_source")

ROLLUP_SQL = """
INSERT INTO telemetry_rollup (tag_id, minute, min_value, max_value, mean_value, sample_count)
SELECT tag_id, source_us / 60000000, MIN(value), MAX(value), AVG(value), COUNT(*)
FROM telemetry_sample
WHERE tag_id = :tag_id AND source_us >= :lo AND source_us < :hi AND status_code < 1073741824
  AND value IS NOT NULL
GROUP BY tag_id, source_us / 60000000
ON CONFLICT (tag_id, minute) DO UPDATE SET min_value = excluded.min_value, max_value = excluded.max_value,
  mean_value = excluded.mean_value, sample_count = excluded.sample_count
"""


def sample_insert(dialect_name: str) -> Any:
    """INSERT of samples that silently skips a (tag, source time) already stored: replays are no-ops."""
    table = TelemetrySample.__table__
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["tag_id", "source_us"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["tag_id", "source_us"])


class IngestState:
    """What the writer remembers between units of work: tag settings and each tag's alarm evaluator."""

    def __init__(self) -> None:
        self.tags: dict[int, tuple[int, str, str]] = {}  # tag_id -> (asset_id, parameter, unit)
        self.evaluators: dict[int, LimitEvaluator] = {}

    def load(self, sess: Session) -> None:
        """(Re)read tag settings and resume alarms still open in the database."""
        open_alarms = {a.tag_id: a for a in sess.execute(select(Alarm).where(Alarm.cleared_at.is_(None))).scalars()}
        for tag in sess.execute(select(Tag)).scalars():
            self.tags[tag.id] = (tag.asset_id, tag.parameter, tag.unit)
            evaluator = self.evaluators.get(tag.id)
            if evaluator is None:
                evaluator = self.evaluators[tag.id] = LimitEvaluator.for_tag(tag)
                if tag.id in open_alarms:
                    evaluator.resume(open_alarms[tag.id])
            else:
                evaluator.configure(tag)

    def snapshot(self) -> dict[int, LimitEvaluator]:
        return copy.deepcopy(self.evaluators)

    def restore(self, evaluators: dict[int, LimitEvaluator]) -> None:
        self.evaluators = evaluators


@dataclass
class IngestResult:
    offered: int = 0
    alarms_raised: int = 0
    alarms_cleared: int = 0
    gaps_opened: int = 0
    gaps_closed: int = 0
    shelving_expired: int = 0


def ingest(sess: Session, items: Sequence[Any], state: IngestState) -> IngestResult:
    """Write one unit of work: samples, rollups, alarms, gaps and heartbeats, in the order received.
    Never commits.

    On failure the caller rolls back and must restore ``state`` from a snapshot taken before.
    """
    result = IngestResult()
    dialect = sess.get_bind().dialect.name
    segment: list[SampleIn] = []
    beats: dict[int, Heartbeat] = {}
    for item in items:
        if isinstance(item, SampleIn):
            segment.append(item)
            continue
        if segment:
            _ingest_samples(sess, dialect, segment, state, result)
            segment = []
        if isinstance(item, SubscriptionRevision):
            _store_subscription(sess, dialect, item)
            continue
        if isinstance(item, Heartbeat):
            if not state.tags:
                state.load(sess)
            _evaluate_alarms_on_clock(sess, item, state, result)
            beats[item.asset_id] = item
        else:
            if beats:  # a restart gap starts after the heartbeats before it
                _store_heartbeats(sess, dialect, beats)
                beats = {}
            _apply_gap_event(sess, item, result)
    if segment:
        _ingest_samples(sess, dialect, segment, state, result)
    if beats:
        _store_heartbeats(sess, dialect, beats)
    return result


def _store_subscription(sess: Session, dialect: str, item: SubscriptionRevision) -> None:
    if sess.get(Tag, item.tag_id) is None:  # a tag removed since: nothing to show it on
        return
    table = TelemetrySubscription.__table__
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    values = {name: getattr(item, name) for name in ("tag_id", "subscribed_us", "requested_sampling_ms",
                                                      "revised_sampling_ms", "requested_publishing_ms",
                                                      "revised_publishing_ms", "status")}
    sess.execute(insert.values(**values).on_conflict_do_update(
        index_elements=["tag_id"], set_={k: v for k, v in values.items() if k != "tag_id"}))


def _store_heartbeats(sess: Session, dialect: str, beats: dict[int, Heartbeat]) -> None:
    """Keep the newest heartbeat of each asset (one row per asset, overwritten)."""
    table = TelemetryLink.__table__
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    rows = [{"asset_id": b.asset_id, "alive_us": b.alive_us,
             "server_offset_us": None if b.server_us is None else b.server_us - b.alive_us} for b in beats.values()]
    stmt = insert.on_conflict_do_update(index_elements=["asset_id"], set_={
        "alive_us": insert.excluded.alive_us, "server_offset_us": insert.excluded.server_offset_us})
    known = set(sess.execute(select(Asset.id).where(Asset.id.in_([r["asset_id"] for r in rows]))).scalars())
    rows = [r for r in rows if r["asset_id"] in known]
    if rows:
        sess.execute(stmt, rows)


def _evaluate_alarms_on_clock(sess: Session, beat: Heartbeat, state: IngestState, result: IngestResult) -> None:
    """A heartbeat says each tag of the asset still has its last value at ``alive_us``: on-delays and
    off-delays that ran out by then raise or clear their alarm, with no new sample needed."""
    events: list[AlarmEvent] = []
    for tag_id, (asset_id, _parameter, _unit) in state.tags.items():
        evaluator = state.evaluators.get(tag_id)
        if asset_id == beat.asset_id and evaluator is not None:
            events.extend(evaluator.tick(beat.alive_us))
    _apply_alarm_events(sess, events, state, result)


def expire_shelving(sess: Session, result: IngestResult | None = None, at: datetime | None = None) -> int:
    """End every shelving whose time is up: the alarm is back on the active list, said so in its audit trail."""
    from app.audit import audit_reason

    now = at or utcnow()
    expired = sess.execute(select(Alarm).where(Alarm.shelved_until.is_not(None), Alarm.shelved_until <= now)).scalars().all()
    for alarm in expired:
        with audit_reason(sess, f"shelving expired at {alarm.shelved_until.isoformat()}: alarm back on the active list"):
            alarm.shelved_until = None
        sess.flush()
        signals.alarm_unshelved.send(sess.get(Asset, alarm.asset_id), alarm=alarm)
    if result is not None:
        result.shelving_expired += len(expired)
    return len(expired)


def _ingest_samples(sess: Session, dialect: str, samples: list[SampleIn], state: IngestState,
                    result: IngestResult) -> None:
    unknown = {s.tag_id for s in samples} - state.tags.keys()
    if unknown:
        state.load(sess)
        samples = [s for s in samples if s.tag_id in state.tags]  # a tag id no longer known is dropped
    if not samples:
        return
    result.offered += len(samples)
    sess.execute(sample_insert(dialect), [
        {"tag_id": s.tag_id, "source_us": s.source_us, "server_us": s.server_us, "value": s.value,
         "status_code": s.status_code, "time_source": s.time_source} for s in samples])
    ranges: dict[int, list[int]] = {}
    for s in samples:
        span = ranges.setdefault(s.tag_id, [s.source_us, s.source_us])
        span[0], span[1] = min(span[0], s.source_us), max(span[1], s.source_us)
    for tag_id, (lo, hi) in ranges.items():
        minute_lo = (lo // US_PER_MINUTE) * US_PER_MINUTE
        minute_hi = (hi // US_PER_MINUTE + 1) * US_PER_MINUTE
        sess.execute(text(ROLLUP_SQL), {"tag_id": tag_id, "lo": minute_lo, "hi": minute_hi})
    _evaluate_alarms(sess, samples, state, result)
    _close_gaps_on_good_data(sess, samples, state, result)


def _evaluate_alarms(sess: Session, samples: list[SampleIn], state: IngestState, result: IngestResult) -> None:
    events: list[AlarmEvent] = []
    for s in sorted(samples, key=lambda s: (s.tag_id, s.source_us)):
        if s.value is None or not is_good(s.status_code) or not math.isfinite(s.value):
            continue
        evaluator = state.evaluators.get(s.tag_id)
        if evaluator is not None:
            events.extend(evaluator.feed(s.source_us, s.value))
    _apply_alarm_events(sess, events, state, result)


def _apply_alarm_events(sess: Session, events: list[AlarmEvent], state: IngestState, result: IngestResult) -> None:
    if not events:
        return
    peaks: dict[int, float] = {}
    for event in events:
        evaluator = state.evaluators[event.tag_id]
        asset_id, parameter, unit = state.tags[event.tag_id]
        if event.kind == "raise":
            alarm = Alarm(asset_id=asset_id, tag_id=event.tag_id, parameter=parameter, unit=unit,
                          limit_kind=event.limit_kind, limit_value=event.limit_value,
                          excursion_started_at=from_us(event.excursion_started_us or event.at_us),
                          raised_at=from_us(event.at_us), peak_value=event.value, state="active")
            sess.add(alarm)
            sess.flush()
            evaluator.alarm_id = alarm.id
            result.alarms_raised += 1
            signals.alarm_raised.send(sess.get(Asset, asset_id), alarm=alarm)
        elif event.kind == "peak" and evaluator.alarm_id is not None:
            peaks[evaluator.alarm_id] = event.value
        elif event.kind == "clear" and evaluator.alarm_id is not None:
            alarm = sess.get(Alarm, evaluator.alarm_id)
            if evaluator.alarm_id in peaks:
                alarm.peak_value = peaks.pop(evaluator.alarm_id)
            alarm.cleared_at = max(from_us(event.at_us), alarm.raised_at)
            alarm.state = "cleared" if alarm.acknowledged_at is not None else "returned"
            sess.flush()
            evaluator.alarm_id = None
            result.alarms_cleared += 1
            signals.alarm_cleared.send(sess.get(Asset, asset_id), alarm=alarm)
    for alarm_id, peak in peaks.items():
        # the peak is derived from raw samples (instrument data), so it is not audited per change
        sess.execute(update(Alarm.__table__).where(Alarm.__table__.c.id == alarm_id).values(peak_value=peak))


def _close_gaps_on_good_data(sess: Session, samples: list[SampleIn], state: IngestState,
                             result: IngestResult) -> None:
    """Bad-quality values open a gap for their tag; good data closes the tag's and the asset's gaps."""
    asset_ids = {state.tags[s.tag_id][0] for s in samples}
    open_list = sess.execute(select(TelemetryGap).where(TelemetryGap.asset_id.in_(asset_ids),
                                                        TelemetryGap.ended_at.is_(None))).scalars().all()
    asset_gaps: dict[int, list[TelemetryGap]] = {}
    tag_gaps: dict[int, TelemetryGap] = {}
    for gap in open_list:
        if gap.tag_id is None:
            asset_gaps.setdefault(gap.asset_id, []).append(gap)
        else:
            tag_gaps[gap.tag_id] = gap
    for s in sorted(samples, key=lambda s: s.source_us):
        asset_id, parameter, _unit = state.tags[s.tag_id]
        at = from_us(s.source_us)
        if is_good(s.status_code) and s.value is not None:
            # a value from before the gap began (a replay after a reconnect) says nothing about the gap
            ending = [g for g in asset_gaps.get(asset_id, []) if g.started_at < at]
            for gap in ending:
                gap.ended_at = at
                asset_gaps[asset_id].remove(gap)
                result.gaps_closed += 1
            gap = tag_gaps.get(s.tag_id)
            if gap is not None and gap.started_at < at:
                gap.ended_at = at
                del tag_gaps[s.tag_id]
                result.gaps_closed += 1
        elif s.tag_id not in tag_gaps:
            tag_gaps[s.tag_id] = _open_gap(sess, GapEvent(asset_id, "bad_quality", s.source_us,
                                                          f"{parameter}: status 0x{s.status_code:08X}", s.tag_id),
                                           result)
    sess.flush()


def _open_gap(sess: Session, event: GapEvent, result: IngestResult) -> TelemetryGap:
    gap = TelemetryGap(asset_id=event.asset_id, tag_id=event.tag_id, cause=event.cause,
                       started_at=from_us(event.at_us), detail=event.detail)
    sess.add(gap)
    sess.flush()
    result.gaps_opened += 1
    signals.gap_opened.send(sess.get(Asset, event.asset_id), gap=gap)
    return gap


def _apply_gap_event(sess: Session, event: GapEvent, result: IngestResult) -> None:
    open_gaps = sess.execute(select(TelemetryGap).where(
        TelemetryGap.asset_id == event.asset_id, TelemetryGap.ended_at.is_(None),
        TelemetryGap.tag_id.is_(None) if event.tag_id is None else TelemetryGap.tag_id == event.tag_id,
    ).order_by(TelemetryGap.started_at)).scalars().all()
    if event.action == "close":
        for gap in open_gaps:
            gap.ended_at = max(from_us(event.at_us), gap.started_at)
            result.gaps_closed += 1
        sess.flush()
        return
    if event.action == "restart":
        if open_gaps:  # a clean stop already opened the gap at the moment it stopped
            return
        assured = _last_assured_us(sess, event.asset_id)
        if assured is None:  # never collected before: nothing was missed
            return
        event = GapEvent(event.asset_id, event.cause, min(assured + 1, event.at_us), event.detail, None, "open")
    if event.action == "cause":
        for gap in open_gaps:
            gap.cause = event.cause
            gap.detail = "; ".join(p for p in (gap.detail, event.detail) if p)
        sess.flush()
        return
    if any(g.cause == event.cause for g in open_gaps):
        return
    _open_gap(sess, event, result)


# --- queries ------------------------------------------------------------------------------------

def gaps_in_window(sess: Session, asset_id: int, start: datetime, end: datetime | None) -> list[TelemetryGap]:
    """Gaps of an asset that overlap [start, end) (end None = up to now, gaps still open included)."""
    stmt = select(TelemetryGap).where(TelemetryGap.asset_id == asset_id,
                                      or_(TelemetryGap.ended_at.is_(None), TelemetryGap.ended_at > start))
    if end is not None:
        stmt = stmt.where(TelemetryGap.started_at < end)
    return list(sess.execute(stmt.order_by(TelemetryGap.started_at, TelemetryGap.id)).scalars())


# A server clock further than this from the collector's is flagged on the asset page (source times
# from that server may be off by as much).
CLOCK_TOLERANCE_S = float(os.environ.get("EQUIPMENT_CLOCK_TOLERANCE_S", "2"))


@dataclass
class LinkStatus:
    """What the asset page shows about the connection: last heard, server clock offset, per-tag intervals."""

    alive_at: datetime | None
    server_offset_s: float | None
    subscriptions: dict[int, TelemetrySubscription]

    @property
    def clock_off(self) -> bool:
        return self.server_offset_s is not None and abs(self.server_offset_s) > CLOCK_TOLERANCE_S


def link_status(sess: Session, asset_id: int) -> LinkStatus:
    link = sess.get(TelemetryLink, asset_id)
    subs = sess.execute(select(TelemetrySubscription).join(Tag, Tag.id == TelemetrySubscription.tag_id)
                        .where(Tag.asset_id == asset_id)).scalars()
    return LinkStatus(from_us(link.alive_us) if link else None,
                      None if link is None or link.server_offset_us is None else link.server_offset_us / 1e6,
                      {s.tag_id: s for s in subs})


def open_gaps(sess: Session, asset_id: int) -> list[TelemetryGap]:
    return list(sess.execute(select(TelemetryGap).where(TelemetryGap.asset_id == asset_id,
                                                        TelemetryGap.ended_at.is_(None))).scalars())


@dataclass
class Reading:
    """The latest value of one tag, for live state on pages."""

    tag_id: int
    parameter: str
    value: float | None
    unit: str
    source_time: datetime | None
    age: timedelta | None
    in_alarm: bool
    good: bool
    low_limit: float | None = None
    high_limit: float | None = None
    alive_at: datetime | None = None  # the server was last heard (data or keep-alive): the value still held then
    excursion: str | None = None  # out of limits, not (yet) alarmed: what and after how long it alarms

    @property
    def age_seconds(self) -> float | None:
        return None if self.age is None else self.age.total_seconds()


def _excursion_words(tag: Tag, value: float | None, good: bool) -> str | None:
    """In words, a value out of its limits while the on-delay runs (no alarm open on it)."""
    if value is None or not good:
        return None
    if tag.high_limit is not None and value > tag.high_limit:
        where = f"above the high limit {f'{tag.high_limit:g}'} {tag.unit}".rstrip()
    elif tag.low_limit is not None and value < tag.low_limit:
        where = f"below the low limit {f'{tag.low_limit:g}'} {tag.unit}".rstrip()
    else:
        return None
    return f"{where}; alarm if it lasts {f'{tag.on_delay_s:g}'} s"


def latest_readings(sess: Session, asset_id: int, at: datetime | None = None) -> list[Reading]:
    """Latest value of each active tag of an asset, with its age, whether its alarm is open, when the
    connection was last known alive, and whether it is out of limits awaiting its on-delay."""
    now = at or utcnow()
    tags = sess.execute(select(Tag).where(Tag.asset_id == asset_id, Tag.active.is_(True)).order_by(Tag.id)).scalars()
    alarmed = set(sess.execute(select(Alarm.tag_id).where(Alarm.asset_id == asset_id,
                                                          Alarm.cleared_at.is_(None))).scalars())
    alive_us = sess.execute(select(TelemetryLink.alive_us).where(TelemetryLink.asset_id == asset_id)).scalar_one_or_none()
    readings = []
    for tag in tags:
        row = samples.latest_sample(sess, tag.id)
        source = from_us(row.source_us) if row else None
        good = bool(row) and is_good(row.status_code)
        alive = from_us(alive_us) if alive_us is not None and row and alive_us >= row.source_us else None
        in_alarm = tag.id in alarmed
        readings.append(Reading(tag.id, tag.parameter, row.value if row else None, tag.unit, source,
                                (now - source) if source else None, in_alarm, good, tag.low_limit, tag.high_limit,
                                alive, None if in_alarm or not row else _excursion_words(tag, row.value, good)))
    return readings


@dataclass
class ChartPoint:
    at: datetime
    minimum: float
    maximum: float
    mean: float
    count: int


def chart_series(sess: Session, tag_id: int, start: datetime, end: datetime, max_points: int = 2000) -> list[ChartPoint]:
    """At most ``max_points`` buckets over [start, end): min/max band and mean.

    Long ranges read the per-minute rollups; ranges short enough for sub-minute buckets read the raw
    good-quality samples. An empty bucket is simply absent, so a gap in the data shows as a gap.
    """
    start_us, end_us = to_us(start), to_us(end)
    span = max(end_us - start_us, 1)
    bucket_us = max(math.ceil(span / max(max_points, 1)), 1)
    if bucket_us >= US_PER_MINUTE:
        bucket_minutes = math.ceil(bucket_us / US_PER_MINUTE)
        m0, m1 = start_us // US_PER_MINUTE, -(-end_us // US_PER_MINUTE)
        bucket = (TelemetryRollup.minute - m0) // bucket_minutes
        rows = sess.execute(
            select(bucket.label("b"), func.min(TelemetryRollup.min_value), func.max(TelemetryRollup.max_value),
                   func.sum(TelemetryRollup.mean_value * TelemetryRollup.sample_count),
                   func.sum(TelemetryRollup.sample_count))
            .where(TelemetryRollup.tag_id == tag_id, TelemetryRollup.minute >= m0, TelemetryRollup.minute < m1)
            .group_by(text("b")).order_by(text("b"))
        ).all()
        origin, width = m0 * US_PER_MINUTE, bucket_minutes * US_PER_MINUTE
    elif samples.window_has_chunks(sess, tag_id, start_us, end_us):  # part of the window is compacted
        rows = samples.bucket_samples(samples.read_samples(sess, tag_id, start_us, end_us), start_us, bucket_us)
        origin, width = start_us, bucket_us
    else:
        bucket = (TelemetrySample.source_us - start_us) // bucket_us
        rows = sess.execute(
            select(bucket.label("b"), func.min(TelemetrySample.value), func.max(TelemetrySample.value),
                   func.sum(TelemetrySample.value), func.count())
            .where(TelemetrySample.tag_id == tag_id, TelemetrySample.source_us >= start_us,
                   TelemetrySample.source_us < end_us, TelemetrySample.status_code < UNCERTAIN_MASK,
                   TelemetrySample.value.is_not(None))
            .group_by(text("b")).order_by(text("b"))
        ).all()
        origin, width = start_us, bucket_us
    return [ChartPoint(from_us(origin + int(b) * width + width // 2), lo, hi, total / count, int(count))
            for b, lo, hi, total, count in rows if count]


def raw_samples(sess: Session, tag_id: int, start: datetime, end: datetime,
                limit: int | None = None) -> list[samples.Sample]:
    """Raw samples of a tag in [start, end), in source-time order, from rows and chunks alike."""
    return samples.read_samples(sess, tag_id, to_us(start), to_us(end), limit)


def _last_assured_us(sess: Session, asset_id: int) -> int | None:
    """The last moment the asset's monitoring is known to have been assured: its newest stored sample or
    the last heartbeat, whichever is later (a heartbeat is written only after the samples received before it)."""
    newest = last_sample_us(sess, asset_id)
    alive = sess.execute(select(TelemetryLink.alive_us).where(TelemetryLink.asset_id == asset_id)).scalar_one_or_none()
    candidates = [t for t in (newest, alive) if t is not None]
    return max(candidates) if candidates else None


def last_sample_us(sess: Session, asset_id: int) -> int | None:
    """Source time of the newest sample of any tag of the asset."""
    newest = None
    for tag_id in sess.execute(select(Tag.id).where(Tag.asset_id == asset_id)).scalars():
        value = samples.newest_source_us(sess, tag_id)
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest


# The audit action the collector's writer records for an item the database refused for good.
REJECTED_ACTION = "rejected"


def rejected_telemetry_count(sess: Session, asset_id: int) -> int:
    """How many telemetry items of the asset the database refused for good (kept in the collector's spool)."""
    from app.audit import AuditEntry

    return sess.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.table_name == "equipment_asset", AuditEntry.record_id == str(asset_id),
        AuditEntry.action == REJECTED_ACTION)).scalar_one()


def iter_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
