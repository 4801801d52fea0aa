"""Ingest rules (dedupe, rollups, gaps), the alarm evaluator on a chattering signal, acknowledge and
shelving, the window queries and signals batches relies on."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from equipment import operations as ops
from equipment import signals
from equipment.alarms import LimitEvaluator
from equipment.models import Alarm, TelemetryRollup, TelemetrySample
from equipment.telemetry import GapEvent, IngestState, SampleIn, chart_series, ingest, to_us

SECOND = 1_000_000


def chattering(start_us: int, tag_id: int) -> list[SampleIn]:
    """A temperature dancing around the 38.0 limit, then a real excursion, then chatter near the limit."""
    values = [37.9, 38.1, 37.95, 38.05, 37.9, 38.1, 37.98]            # chatter: shorter than the on-delay
    values += [38.3] * 12                                                # persists 12 s: one alarm
    values += [37.95, 38.02, 37.9, 38.05, 37.85, 38.01]                  # back near the limit: inside deadband
    values += [37.5] * 8                                                 # really back: clears after off-delay
    return [SampleIn(tag_id, start_us + i * SECOND, start_us + i * SECOND, v, 0) for i, v in enumerate(values)]


def test_evaluator_gives_one_alarm_for_a_chattering_signal():
    evaluator = LimitEvaluator(1, 36.0, 38.0, on_delay_us=5 * SECOND, off_delay_us=3 * SECOND, deadband=0.3)
    events = [e for s in chattering(0, 1) for e in evaluator.feed(s.source_us, s.value)]
    kinds = [e.kind for e in events]
    assert kinds.count("raise") == 1 and kinds.count("clear") == 1
    raised = next(e for e in events if e.kind == "raise")
    assert raised.excursion_started_us == 7 * SECOND and raised.at_us == 12 * SECOND
    cleared = next(e for e in events if e.kind == "clear")
    assert cleared.at_us == 28 * SECOND  # 37.5 from 25 s, held for the 3 s off-delay


def test_without_deadband_and_delays_the_same_signal_chatters():
    evaluator = LimitEvaluator(1, 36.0, 38.0)
    events = [e for s in chattering(0, 1) for e in evaluator.feed(s.source_us, s.value)]
    assert sum(e.kind == "raise" for e in events) > 3  # what the settings above prevent


def test_ingest_stores_once_keeps_rollups_raises_alarm_and_signals(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-01")
    tag = make_tag(asset, on_delay_s=5, off_delay_s=3, deadband=0.3)
    received = []
    on_alarm = lambda sender, alarm: received.append((sender.code, alarm.parameter))  # noqa: E731
    signals.alarm_raised.connect(on_alarm)
    start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    samples = chattering(to_us(start), tag.id)
    state = IngestState()
    state.load(db_session)
    try:
        ingest(db_session, samples, state)
        ingest(db_session, samples[:10], state)  # a replay after a reconnect: stored once
    finally:
        signals.alarm_raised.disconnect(on_alarm)
    assert db_session.execute(select(func.count()).select_from(TelemetrySample)
                              .where(TelemetrySample.tag_id == tag.id)).scalar_one() == len(samples)
    assert db_session.execute(select(func.sum(TelemetryRollup.sample_count))
                              .where(TelemetryRollup.tag_id == tag.id)).scalar_one() == len(samples)
    alarms = ops.alarms_in_window(db_session, asset.id, start, None)
    assert len(alarms) == 1 and received == [("CO2-INC-01", "Temperature")]
    alarm = alarms[0]
    assert alarm.peak_value == 38.3 and alarm.state == "returned" and alarm.cleared_at is not None
    assert ops.alarms_in_window(db_session, asset.id, start - timedelta(hours=1), start) == []
    points = chart_series(db_session, tag.id, start - timedelta(minutes=1), start + timedelta(minutes=2), 100)
    assert sum(p.count for p in points) == len(samples) and max(p.maximum for p in points) == 38.3


def test_bad_quality_and_connection_loss_open_gaps_closed_by_good_data(db_session, make_asset, make_tag):
    asset = make_asset("BR-ROCK-01", asset_type="rocking_bioreactor")
    ph = make_tag(asset, "pH", 7.0, 7.4, unit="")
    opened = []
    on_gap = lambda sender, gap: opened.append(gap.cause)  # noqa: E731
    signals.gap_opened.connect(on_gap)
    t0 = to_us(utcnow()) - 60 * SECOND
    state = IngestState()
    state.load(db_session)
    try:
        ingest(db_session, [SampleIn(ph.id, t0, t0, 7.2, 0),
                            SampleIn(ph.id, t0 + SECOND, t0 + SECOND, 0.0, 0x80000000),
                            SampleIn(ph.id, t0 + 2 * SECOND, t0 + 2 * SECOND, 7.21, 0),
                            GapEvent(asset.id, "connection_lost", t0 + 3 * SECOND, "socket closed"),
                            GapEvent(asset.id, "server_restart", t0 + 9 * SECOND, "restarted", action="cause"),
                            SampleIn(ph.id, t0 + 10 * SECOND, t0 + 10 * SECOND, 7.22, 0)], state)
    finally:
        signals.gap_opened.disconnect(on_gap)
    gaps = ops.gaps_in_window(db_session, asset.id, utcnow() - timedelta(minutes=5), None)
    assert [g.cause for g in gaps] == ["bad_quality", "server_restart"] and opened == ["bad_quality", "connection_lost"]
    assert all(g.ended_at is not None for g in gaps)
    assert gaps[1].detail == "socket closed; restarted"
    assert (gaps[1].ended_at - gaps[1].started_at) == timedelta(seconds=7)
    readings = ops.latest_readings(db_session, asset.id)
    assert readings[0].value == 7.22 and readings[0].good and not readings[0].in_alarm


def _raise_alarm(db_session, asset, tag) -> Alarm:
    t0 = to_us(utcnow()) - 30 * SECOND
    state = IngestState()
    state.load(db_session)
    ingest(db_session, [SampleIn(tag.id, t0 + i * SECOND, None, 39.0, 0) for i in range(3)], state)
    db_session.commit()
    return db_session.execute(select(Alarm).where(Alarm.tag_id == tag.id)).scalar_one()


def test_acknowledge_needs_a_comment_and_records_who(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-02")
    alarm = _raise_alarm(db_session, asset, make_tag(asset))
    with pytest.raises(ValidationFailed):
        ops.acknowledge_alarm(db_session, alarm, "  ")
    assert alarm.acknowledged_at is None
    ops.acknowledge_alarm(db_session, alarm, "door left ajar; closed")
    assert alarm.state == "acknowledged" and alarm.acknowledged_by == "test"
    with pytest.raises(Conflict):
        ops.acknowledge_alarm(db_session, alarm, "again")


def test_shelving_is_bounded_and_hides_the_alarm_for_a_while(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-03")
    alarm = _raise_alarm(db_session, asset, make_tag(asset))
    for minutes in ("0", "abc", str(ops.MAX_SHELVE_MINUTES + 1)):
        with pytest.raises(ValidationFailed):
            ops.shelve_alarm(db_session, alarm, minutes, "sensor replacement")
    with pytest.raises(ValidationFailed):
        ops.shelve_alarm(db_session, alarm, "30", "")
    assert alarm.shelved_until is None
    ops.shelve_alarm(db_session, alarm, "30", "sensor replacement")
    assert alarm.is_shelved() and ops.alarms_needing_attention(db_session, asset.id) == []
    later = utcnow() + timedelta(minutes=31)
    assert ops.alarms_needing_attention(db_session, asset.id, at=later) == [alarm]
    assert ops.alarms_in_window(db_session, asset.id, utcnow() - timedelta(hours=1), None) == [alarm]


def test_a_missed_notification_sequence_number_is_a_gap():
    from asyncua import ua

    from equipment.opcua.collector import EndpointConfig, EndpointSession, TagPoint

    class Received(list):
        def submit(self, item):
            self.append(item)

    received = Received()
    config = EndpointConfig("opc.tcp://127.0.0.1:4840", "None", "None", None, None, {7}, [TagPoint(1, 7, "ns=2;s=X")])
    session = EndpointSession(config, received, publishing_interval_ms=50, reconnect_delay=1, stale_after=5,
                              connect_timeout=1)

    def message(sequence: int, data: bool = True) -> ua.NotificationMessage:
        return ua.NotificationMessage(SequenceNumber=sequence,
                                      NotificationData=[ua.DataChangeNotification()] if data else [])

    for sequence, data in ((1, True), (2, True), (3, False), (3, True), (4, False)):
        session.on_publish(message(sequence, data))  # keep-alives carry the next number: no gap
    assert received == []
    session.on_publish(message(7))
    assert [(g.asset_id, g.cause, g.detail) for g in received] == [(7, "missed_sequence", "notifications 4 to 6 not received")]


def test_unshelving_needs_a_reason_and_a_shelved_alarm(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-04")
    alarm = _raise_alarm(db_session, asset, make_tag(asset))
    with pytest.raises(Conflict):
        ops.unshelve_alarm(db_session, alarm, "not shelved yet")
    ops.shelve_alarm(db_session, alarm, "30", "sensor replacement")
    assert ops.shelved_alarms(db_session, asset.id) == [alarm]
    with pytest.raises(ValidationFailed) as refused:
        ops.unshelve_alarm(db_session, alarm, " ")
    assert "reason" in refused.value.errors and alarm.is_shelved()
    ops.unshelve_alarm(db_session, alarm, "replaced early")
    assert not alarm.is_shelved() and ops.alarms_needing_attention(db_session, asset.id) == [alarm]
    assert ops.shelved_alarms(db_session, asset.id) == []


def test_shelving_ends_on_the_clock_with_an_audit_entry_and_a_signal(db_session, make_asset, make_tag):
    from app.audit import AuditEntry
    from equipment.telemetry import expire_shelving

    asset = make_asset("CO2-INC-05")
    alarm = _raise_alarm(db_session, asset, make_tag(asset))
    ops.shelve_alarm(db_session, alarm, "30", "door left open for cleaning")
    db_session.flush()
    back = []
    on_back = lambda sender, alarm: back.append(alarm.id)  # noqa: E731
    signals.alarm_unshelved.connect(on_back)
    try:
        assert expire_shelving(db_session, at=utcnow() + timedelta(minutes=29)) == 0
        assert expire_shelving(db_session, at=utcnow() + timedelta(minutes=31)) == 1
    finally:
        signals.alarm_unshelved.disconnect(on_back)
    assert alarm.shelved_until is None and back == [alarm.id]
    db_session.commit()  # audit entries are written when the unit of work commits
    reasons = db_session.execute(select(AuditEntry.reason).where(AuditEntry.table_name == "equipment_alarm",
                                                                 AuditEntry.record_id == str(alarm.id))).scalars().all()
    assert any(r and r.startswith("shelving expired") for r in reasons)


def test_a_restart_gap_starts_after_everything_spooled_and_the_last_heartbeat(db_session, make_asset, make_tag):
    from equipment.telemetry import Heartbeat

    asset = make_asset("CO2-INC-06")
    tag = make_tag(asset)
    t0 = to_us(utcnow()) - 60 * SECOND
    state = IngestState()
    state.load(db_session)
    spooled = [SampleIn(tag.id, t0 + i * SECOND, None, 37.0 + i / 100, 0) for i in range(24)]
    ingest(db_session, [SampleIn(tag.id, t0 - SECOND, None, 37.0, 0)], state)
    # the new run's restart event comes after the previous run's spool, and after its last heartbeat
    ingest(db_session, spooled + [Heartbeat(asset.id, t0 + 24 * SECOND),
                                  GapEvent(asset.id, "collector_restart", t0 + 40 * SECOND, "started", None, "restart"),
                                  SampleIn(tag.id, t0 + 30 * SECOND, None, 37.5, 0),  # changed while down
                                  GapEvent(asset.id, "connection_lost", t0 + 41 * SECOND, "data", None, "close")],
           state)
    [gap] = ops.gaps_in_window(db_session, asset.id, utcnow() - timedelta(minutes=5), None)
    assert gap.cause == "collector_restart"
    assert gap.started_at.timestamp() * SECOND == pytest.approx(t0 + 24 * SECOND + 1, abs=1)
    assert gap.ended_at.timestamp() * SECOND == pytest.approx(t0 + 30 * SECOND, abs=1)  # at the first resumed sample


def test_a_replayed_old_value_does_not_end_a_gap_and_data_ends_it_at_its_own_time(db_session, make_asset, make_tag):
    asset = make_asset("CO2-INC-08")
    tag = make_tag(asset)
    t0 = to_us(utcnow()) - 60 * SECOND
    state = IngestState()
    state.load(db_session)
    ingest(db_session, [SampleIn(tag.id, t0, None, 37.0, 0),
                        GapEvent(asset.id, "connection_lost", t0 + 5 * SECOND, "socket closed"),
                        SampleIn(tag.id, t0, None, 37.0, 0),  # the value after a resubscribe, stamped before the gap
                        GapEvent(asset.id, "connection_lost", t0 + 9 * SECOND, "data received", None, "close")], state)
    [gap] = ops.gaps_in_window(db_session, asset.id, utcnow() - timedelta(minutes=5), None)
    assert gap.ended_at - gap.started_at == timedelta(seconds=4)  # ended when data came back, not at once


def test_a_server_restart_detail_has_one_utc_designator():
    from datetime import datetime, timezone

    from equipment.opcua.collector import _datetime_us, _iso_z, time_used

    assert _iso_z(datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)) == "2026-05-01T08:00:00Z"
    assert _iso_z(datetime(2026, 5, 1, 8, 0)) == "2026-05-01T08:00:00Z"
    assert _datetime_us(datetime(1601, 1, 1)) is None and _datetime_us(None) is None
    assert time_used(None, None, 5) == (5, 2) and time_used(None, 4, 5) == (4, 1) and time_used(3, 4, 5) == (3, 0)
