"""Telemetry storage: lossless chunks (every column, bit for bit), one read interface over rows and
chunks, compaction that is idempotent and refuses the recent window, tamper detection, and retention
that refuses deleting telemetry a batch's occupancy of the asset covers."""
from __future__ import annotations

import itertools
import math
import struct
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as, history_for
from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from equipment import chunks
from equipment import operations as ops
from equipment import samples as store
from equipment.chunks import Sample
from equipment.models import CHUNK_SPAN_US, TelemetryChunk, TelemetryRollup, TelemetrySample
from equipment.telemetry import SampleIn, chart_series, from_us, ingest, IngestState, raw_samples, to_us

SECOND = 1_000_000
HOUR = CHUNK_SPAN_US
_hours = itertools.count(1)


def exact(rows: list[Sample]) -> list[tuple[Any, ...]]:
    """Samples compared bit for bit (a value by its IEEE 754 bits, so NaN and -0.0 count)."""
    return [(s.tag_id, s.source_us, s.server_us, None if s.value is None else struct.pack("<d", s.value),
             s.status_code, s.time_source) for s in rows]


values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-10**6, 10**6).map(lambda m: m / 100))  # decimals as instruments report them


@st.composite
def hour_of_samples(draw: Any, nan: bool = True, span_us: int = HOUR) -> list[tuple[int, int | None, float | None, int, int]]:
    offsets = sorted(draw(st.sets(st.integers(0, span_us - 1), min_size=1, max_size=60)))
    out = []
    for offset in offsets:
        value = draw(values)
        if not nan and value is not None and math.isnan(value):
            value = None
        server = draw(st.one_of(st.none(), st.integers(-10 * SECOND, 10 * SECOND)))
        out.append((offset, server, value, draw(st.sampled_from([0, 0x40000000, 0x80340000, 0xFFFFFFFF])),
                    draw(st.integers(0, 3))))
    return out


@given(hour_of_samples(), st.integers(-(2 ** 60), 2 ** 60))
@settings(max_examples=200, deadline=None)
def test_codec_round_trips_every_column_bit_for_bit(drawn, base):
    original = [Sample(7, base + off, None if srv is None else base + off + srv, v, st_, ts)
                for off, srv, v, st_, ts in drawn]
    payload = chunks.encode(original)
    assert exact(chunks.decode(payload, 7)) == exact(original)
    assert chunks.content_hash(7, chunks.decode(payload, 7)) == chunks.content_hash(7, original)


def test_codec_keeps_nan_payloads_negative_zero_and_extremes():
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]
    vals = [odd_nan, -0.0, 0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, None, 37.25]
    original = [Sample(1, 1_800_000_000_000_000 + i * SECOND, None, v, 0, 0) for i, v in enumerate(vals)]
    assert exact(chunks.decode(chunks.encode(original), 1)) == exact(original)


def test_codec_compresses_a_steady_hour_to_a_few_bytes_per_sample():
    t0 = 1_800_000_000_000_000
    hour = [Sample(1, t0 + i * SECOND + (i * 7919) % 500, t0 + i * SECOND + 1500, round(37 + ((i * 31) % 41 - 20) / 1000, 3),
                   0, 0) for i in range(3600)]
    assert len(chunks.encode(hour)) / len(hour) < 4


def test_a_changed_payload_no_longer_matches_its_hash():
    original = [Sample(1, i * SECOND, None, float(i), 0, 0) for i in range(100)]
    altered = [*original[:50], original[50]._replace(value=50.5), *original[51:]]
    assert chunks.content_hash(1, altered) != chunks.content_hash(1, original)
    with pytest.raises(chunks.ChunkError):
        chunks.decode(chunks.encode(original)[:-3], 1)


def _insert_rows(sess: Session, tag_id: int, rows: list[Sample]) -> None:
    sess.execute(insert(TelemetrySample), [s._asdict() for s in rows])


def _old_hour() -> int:
    """A distinct hour well before the recent window, per call."""
    return (to_us(utcnow()) // HOUR - 24 * 400 - next(_hours)) * HOUR


@given(drawn=hour_of_samples(nan=False))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rows_read_back_exactly_after_compaction_on_the_database(db_session, make_asset, make_tag, backend, drawn):
    tag = _property_tag(db_session, make_asset, make_tag, backend)
    start = _old_hour()
    original = [Sample(tag.id, start + off, None if srv is None else start + off + srv, v, code, ts)
                for off, srv, v, code, ts in drawn]
    _insert_rows(db_session, tag.id, original)
    before = store.read_samples(db_session, tag.id, start, start + HOUR)
    assert [(s.source_us, s.server_us, s.status_code, s.time_source) for s in before] == \
           [(s.source_us, s.server_us, s.status_code, s.time_source) for s in original]
    assert all((a.value is None and b.value is None) or a.value == b.value for a, b in zip(before, original))
    written = store.compact_next_chunk(db_session, start + HOUR, [tag.id])
    assert written is not None and written.sample_count == len(original)
    assert db_session.execute(select(func.count()).select_from(TelemetrySample).where(
        TelemetrySample.tag_id == tag.id, TelemetrySample.source_us >= start,
        TelemetrySample.source_us < start + HOUR)).scalar_one() == 0
    assert exact(store.read_samples(db_session, tag.id, start, start + HOUR)) == exact(before)


_property_tags: dict[str, Any] = {}


def _property_tag(db_session, make_asset, make_tag, backend):
    if backend not in _property_tags or db_session.get(type(_property_tags[backend]), _property_tags[backend].id) is None:
        asset = make_asset(f"PROP-{backend[:2].upper()}-{next(_hours)}")
        _property_tags[backend] = make_tag(asset)
    return _property_tags[backend]


def _steady(tag_id: int, start_us: int, seconds: int, status: int = 0) -> list[SampleIn]:
    return [SampleIn(tag_id, start_us + i * SECOND, start_us + i * SECOND + 1200, round(37 + (i % 7) / 100, 2), status)
            for i in range(seconds)]


def test_a_window_spanning_chunks_and_rows_reads_as_one(db_session, make_asset, make_tag):
    asset = make_asset("INC-SPAN")
    tag = make_tag(asset)
    now = utcnow()
    start = (to_us(now - timedelta(hours=5)) // HOUR) * HOUR
    state = IngestState()
    state.load(db_session)
    fed = _steady(tag.id, start, 4 * 3600 + 1800, status=0)
    for part in range(0, len(fed), 5000):
        ingest(db_session, fed[part:part + 5000], state)
    rows_before = store.read_samples(db_session, tag.id, start, start + 5 * HOUR)
    chart_before = chart_series(db_session, tag.id, from_us(start), from_us(start + 5 * HOUR), 600)
    fine_before = chart_series(db_session, tag.id, from_us(start + 2 * HOUR + 600 * SECOND),
                               from_us(start + 3 * HOUR + 600 * SECOND), 600)
    cutoff = store.compaction_cutoff_us(now, store.DEFAULT_RECENT_WINDOW)
    moved = 0
    while store.compact_next_chunk(db_session, cutoff, [tag.id]) is not None:
        moved += 1
    assert moved == (cutoff - start) // HOUR >= 2
    stored_chunks = db_session.execute(select(func.count()).select_from(TelemetryChunk)
                                       .where(TelemetryChunk.tag_id == tag.id)).scalar_one()
    assert stored_chunks == moved
    assert db_session.execute(select(func.min(TelemetrySample.source_us))
                              .where(TelemetrySample.tag_id == tag.id)).scalar_one() >= cutoff
    # one interface, wherever the samples are
    assert exact(store.read_samples(db_session, tag.id, start, start + 5 * HOUR)) == exact(rows_before)
    spanning = raw_samples(db_session, tag.id, from_us(cutoff - 30 * SECOND), from_us(cutoff + 30 * SECOND))
    assert [s.source_us for s in spanning] == [cutoff + i * SECOND for i in range(-30, 30)]
    assert raw_samples(db_session, tag.id, from_us(start), from_us(start + 5 * HOUR), limit=10) == rows_before[:10]
    assert chart_series(db_session, tag.id, from_us(start), from_us(start + 5 * HOUR), 600) == chart_before
    fine_after = chart_series(db_session, tag.id, from_us(start + 2 * HOUR + 600 * SECOND),
                              from_us(start + 3 * HOUR + 600 * SECOND), 600)
    assert [(p.at, p.minimum, p.maximum, p.count) for p in fine_after] == \
           [(p.at, p.minimum, p.maximum, p.count) for p in fine_before]
    assert all(math.isclose(a.mean, b.mean) for a, b in zip(fine_after, fine_before))
    assert store.newest_source_us(db_session, tag.id) == fed[-1].source_us
    reading = next(r for r in ops.latest_readings(db_session, asset.id) if r.tag_id == tag.id)
    assert reading.value == fed[-1].value and to_us(reading.source_time) == fed[-1].source_us


def test_only_chunks_left_still_give_latest_reading(db_session, make_asset, make_tag):
    asset = make_asset("INC-OLD")
    tag = make_tag(asset)
    start = _old_hour()
    _insert_rows(db_session, tag.id, [Sample(tag.id, start + i * SECOND, None, 36.5 + i / 10, 0, 2) for i in range(5)])
    store.compact_next_chunk(db_session, start + HOUR, [tag.id])
    reading = ops.latest_readings(db_session, asset.id)[0]
    assert reading.value == 36.9 and to_us(reading.source_time) == start + 4 * SECOND
    from equipment.telemetry import last_sample_us

    assert last_sample_us(db_session, asset.id) == start + 4 * SECOND


def test_compaction_is_idempotent_and_merges_late_samples(db_session, make_asset, make_tag):
    asset = make_asset("INC-IDEM")
    tag = make_tag(asset)
    start = _old_hour()
    state = IngestState()
    state.load(db_session)
    ingest(db_session, _steady(tag.id, start, 120), state)
    assert store.compact_next_chunk(db_session, start + HOUR, [tag.id]).merged is False
    chunk = db_session.get(TelemetryChunk, (tag.id, start))
    first_hash, first_payload = chunk.sha256, chunk.payload
    assert store.compact_next_chunk(db_session, start + HOUR, [tag.id]) is None  # nothing left: a no-op
    assert (chunk.sha256, chunk.payload) == (first_hash, first_payload)
    # a replay of a compacted sample and a late one arrive as rows; the next run merges them
    late = [SampleIn(tag.id, start + 10 * SECOND, None, 99.0, 0), SampleIn(tag.id, start + 300 * SECOND, None, 37.5, 0)]
    ingest(db_session, late, state)
    merged = store.compact_next_chunk(db_session, start + HOUR, [tag.id])
    assert merged.merged is True and merged.sample_count == 121
    got = store.read_samples(db_session, tag.id, start, start + HOUR)
    assert got[10].value == 37.03 and got[-1].source_us == start + 300 * SECOND  # the first stored copy wins
    rollup = db_session.get(TelemetryRollup, (tag.id, (start + 300 * SECOND) // 60_000_000))
    assert (rollup.sample_count, rollup.mean_value) == (1, 37.5)
    assert store.verify_telemetry(db_session).ok


def test_the_recent_window_is_never_compacted(db_session, make_asset, make_tag):
    asset = make_asset("INC-RECENT")
    tag = make_tag(asset)
    now = utcnow()
    ingest(db_session, _steady(tag.id, to_us(now - timedelta(minutes=50)), 600), _loaded(db_session))
    with pytest.raises(ValidationFailed):
        store.compaction_cutoff_us(now, timedelta(minutes=30))
    cutoff = store.compaction_cutoff_us(now, store.MIN_RECENT_WINDOW)
    assert cutoff <= to_us(now - store.MIN_RECENT_WINDOW)
    assert store.compact_next_chunk(db_session, cutoff, [tag.id]) is None
    with pytest.raises(ValueError):
        store.compact_next_chunk(db_session, cutoff + 1, [tag.id])


def _loaded(sess: Session) -> IngestState:
    state = IngestState()
    state.load(sess)
    return state


def test_tampering_with_a_chunk_is_detected(app, db_session, make_asset, make_tag):
    asset = make_asset("INC-TAMPER")
    tag_id = make_tag(asset).id
    start = _old_hour()
    _insert_rows(db_session, tag_id, [Sample(tag_id, start + i * SECOND, None, 37.0 + i / 100, 0, 0) for i in range(300)])
    store.compact_next_chunk(db_session, start + HOUR, [tag_id])
    _insert_rows(db_session, tag_id, [Sample(tag_id, start + HOUR + i * SECOND, None, 37.0, 0, 0) for i in range(10)])
    store.compact_next_chunk(db_session, start + 2 * HOUR, [tag_id])
    db_session.commit()
    assert store.verify_telemetry(db_session).ok
    table = TelemetryChunk.__table__
    key = (table.c.tag_id == tag_id) & (table.c.start_us == start)
    chunk = db_session.get(TelemetryChunk, (tag_id, start))
    decoded = chunks.decode(chunk.payload, tag_id)
    edited = [*decoded[:5], decoded[5]._replace(value=36.0), *decoded[6:]]
    # 1. a value changed in the payload, hash left alone
    db_session.execute(update(table).where(key).values(payload=chunks.encode(edited)))
    db_session.commit()
    result = store.verify_telemetry(db_session)
    assert not result.ok and "do not match the chunk's hash" in result.problems[0]
    runner = app.test_cli_runner()
    out = runner.invoke(args=["equipment", "verify-telemetry"])
    assert out.exit_code == 1 and "telemetry BROKEN" in out.output
    # 2. payload and hash replaced consistently: the audit trail still holds the original hash
    db_session.execute(update(table).where(key).values(sha256=chunks.content_hash(tag_id, edited)))
    problems = store.verify_telemetry(db_session).problems
    assert any("differs from the one the audit trail recorded" in p for p in problems)
    # 3. a chunk removed behind the application's back (no batch used the asset, so the trigger allows it)
    db_session.execute(delete(table).where(key))
    problems = store.verify_telemetry(db_session).problems
    assert any(f"chunk {tag_id}/{start}: recorded in the audit trail but missing" in p for p in problems)
    # 4. a corrupt payload
    db_session.execute(update(table).where((table.c.tag_id == tag_id) & (table.c.start_us == start + HOUR))
                       .values(payload=b"not a chunk"))
    assert any("does not decode" in p for p in store.verify_telemetry(db_session).problems)


def test_verify_command_reports_intact_telemetry(app, db_session, make_asset, make_tag):
    asset = make_asset("INC-VERIFY")
    tag = make_tag(asset)
    start = _old_hour()
    _insert_rows(db_session, tag.id, [Sample(tag.id, start + i * SECOND, None, 37.0, 0, 0) for i in range(30)])
    store.compact_next_chunk(db_session, start + HOUR, [tag.id])
    db_session.commit()
    out = app.test_cli_runner().invoke(args=["equipment", "verify-telemetry"])
    assert out.exit_code == 0 and "telemetry intact" in out.output, out.output


def test_telemetry_a_batch_used_cannot_be_deleted(db_session, make_asset, make_tag):
    asset = make_asset("INC-KEEP")
    tag = make_tag(asset)
    start = _old_hour()
    usage = ops.start_usage(db_session, asset.code, record_type="batch_record", record_id="MSNK-0042",
                            started_at=from_us(start + 600 * SECOND))
    ops.end_usage(db_session, usage, ended_at=from_us(start + 2 * HOUR))
    _insert_rows(db_session, tag.id, [Sample(tag.id, start + i * 60 * SECOND, None, 37.0, 0, 0) for i in range(180)])
    store.compact_next_chunk(db_session, start + HOUR, [tag.id])  # moving into a chunk is allowed
    db_session.commit()
    with pytest.raises(Conflict, match="MSNK-0042"):
        store.purge_telemetry(db_session, asset.id, from_us(start + 3 * HOUR), reason="retention period over")
    # the database itself refuses, for chunks and for rows the period of the batch covers
    for stmt in (delete(TelemetryChunk).where(TelemetryChunk.tag_id == tag.id),
                 delete(TelemetrySample).where(TelemetrySample.tag_id == tag.id,
                                               TelemetrySample.source_us == start + 90 * 60 * SECOND)):
        with pytest.raises(DatabaseError, match="referenced by an occupancy"):
            with db_session.begin_nested():
                db_session.execute(stmt)
    assert len(store.read_samples(db_session, tag.id, start, start + 3 * HOUR)) == 180
    # telemetry outside any occupancy goes, with an audit entry
    other = make_tag(asset, parameter="CO2", low=4.0, high=6.0, unit="%")
    early = start - 5 * HOUR
    _insert_rows(db_session, other.id, [Sample(other.id, early + i * SECOND, None, 5.0, 0, 0) for i in range(20)])
    store.compact_next_chunk(db_session, early + HOUR, [other.id])
    result = store.purge_telemetry(db_session, asset.id, from_us(early + HOUR), reason="before commissioning")
    assert (result.rows, result.chunks) == (0, 1)
    assert store.read_samples(db_session, other.id, early, early + HOUR) == []
    assert history_for(db_session, "equipment_asset", asset.id)[-1].action == "purge"


def test_the_compaction_job_commits_chunk_by_chunk_and_reruns_safely(engine, backend):
    with acting_as(Actor(None, "test")), Session(engine) as sess:
        asset = ops.create_asset(sess, code=f"INC-JOB-{backend[:2].upper()}", name="job", asset_type="co2_incubator",
                                 location="B2")
        tag_ids = [ops.add_tag(sess, asset, node_id=f"ns=2;s=JOB.{p}", parameter=p, unit="", low_limit=None,
                               high_limit=None).id for p in ("Temperature", "CO2")]
        sess.commit()
    now = utcnow()
    start = (to_us(now) // HOUR - 6) * HOUR
    with Session(engine) as sess:
        for tag_id in tag_ids:
            _insert_rows(sess, tag_id, [Sample(tag_id, start + i * 10 * SECOND, None, 5.0 + i % 3, 0, 1)
                                        for i in range(6 * 360)])
        sess.commit()
    first = store.run_compaction(lambda: Session(engine), now=now, max_chunks=3)
    assert (first.chunks, first.remaining) == (3, True)
    rest = store.run_compaction(lambda: Session(engine), now=now)
    cutoff = store.compaction_cutoff_us(now, store.DEFAULT_RECENT_WINDOW)
    assert first.chunks + rest.chunks == 2 * (cutoff - start) // HOUR and rest.remaining is False
    again = store.run_compaction(lambda: Session(engine), now=now)
    assert (again.chunks, again.failures) == (0, [])
    with Session(engine) as sess:
        for tag_id in tag_ids:
            got = store.read_samples(sess, tag_id, start, start + 6 * HOUR)
            assert [s.source_us for s in got] == [start + i * 10 * SECOND for i in range(6 * 360)]
            assert {s.time_source for s in got} == {1}
        assert store.verify_telemetry(sess).ok


def test_the_compaction_command_and_service_compact_old_hours(app, db_session, make_asset, make_tag, telemetry_db):
    import threading

    asset = make_asset("INC-CLI")
    tag_id = make_tag(asset).id
    start = _old_hour()
    _insert_rows(db_session, tag_id, [Sample(tag_id, start + i * SECOND, None, 37.0, 0, 0) for i in range(40)])
    db_session.commit()
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["equipment", "compact-telemetry", "--keep-hours", "0.5"])
    assert refused.exit_code == 1 and "at least 1:00:00" in refused.output
    out = runner.invoke(args=["equipment", "compact-telemetry", "--max-chunks", "100000"])
    assert out.exit_code == 0 and "chunk(s) written" in out.output, out.output
    assert store.read_samples(db_session, tag_id, start, start + HOUR)[-1].source_us == start + 39 * SECOND
    assert db_session.get(TelemetryChunk, (tag_id, start)) is not None
    # the service, on a database of its own
    engine = make_engine_for(telemetry_db)
    with acting_as(Actor(None, "test")), Session(engine) as sess:
        other = ops.create_asset(sess, code="INC-SVC", name="svc", asset_type="co2_incubator", location="B2")
        svc_tag = ops.add_tag(sess, other, node_id="ns=2;s=SVC.T", parameter="T", unit="C", low_limit=None,
                              high_limit=None).id
        _insert_rows(sess, svc_tag, [Sample(svc_tag, start + i * SECOND, None, 1.5, 0, 0) for i in range(10)])
        sess.commit()
    stop = threading.Event()
    thread = threading.Thread(target=store.run_compactor_service, args=(telemetry_db, 0.05, stop))
    thread.start()
    try:
        for _ in range(200):
            with Session(engine) as sess:
                if sess.get(TelemetryChunk, (svc_tag, start)) is not None:
                    break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with Session(engine) as sess:
        assert [s.value for s in store.read_samples(sess, svc_tag, start, start + HOUR)] == [1.5] * 10
        assert sess.execute(select(func.count()).select_from(TelemetrySample)
                            .where(TelemetrySample.tag_id == svc_tag)).scalar_one() == 0
    engine.dispose()


def make_engine_for(url: str) -> Any:
    from app.db import make_engine

    return make_engine(url)
