"""Alarms on the clock, honest timestamps, heartbeats and subscription revisions, against a real asyncua
server on a free port (the project's simulator)."""
from __future__ import annotations

import time
from functools import partial
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from equipment import operations as ops
from equipment.models import Alarm, TelemetryLink, TelemetrySample, TelemetrySubscription
from equipment.telemetry import from_us
from tests.equipment.test_collector import rig, simulator, wait_for  # noqa: F401  (fixtures)


def _timing(rig: Any, on_delay: float, off_delay: float, deadband: float = 0.0) -> None:
    with acting_as(Actor(None, "test")), Session(rig.engine) as sess:
        tag = ops.get_tag(sess, rig.tag_id)
        ops.update_tag(sess, tag, "test timing", node_id=tag.node_id, parameter=tag.parameter, unit="C",
                       low_limit=36.0, high_limit=38.0, on_delay_s=on_delay, off_delay_s=off_delay, deadband=deadband)
        sess.commit()


def _alarms(rig: Any) -> list[Alarm]:
    with Session(rig.engine) as sess:
        return list(sess.execute(select(Alarm).where(Alarm.asset_id == rig.asset_id)).scalars())


def _samples(rig: Any) -> list[TelemetrySample]:
    with Session(rig.engine) as sess:
        return list(sess.execute(select(TelemetrySample).where(TelemetrySample.tag_id == rig.tag_id)
                                 .order_by(TelemetrySample.source_us)).scalars())


def test_a_steady_excursion_raises_its_alarm_when_the_on_delay_runs_out_and_clears_on_the_clock(rig):
    _timing(rig, on_delay=1.0, off_delay=0.8)
    collector = rig.collector()
    try:
        wait_for(lambda: collector.connected and rig.values())
        rig.set_temp(38.6)  # once: the server reports by exception, so nothing more is sent
        sent = time.monotonic()
        wait_for(lambda: _alarms(rig), timeout=6)
        assert time.monotonic() - sent < 1.0 + 2.0  # within the on-delay plus two seconds
        excursion = [s for s in _samples(rig) if s.value == 38.6]
        assert len(excursion) == 1  # one sample: the alarm did not wait for another
        rig.set_temp(37.0)
        wait_for(lambda: [a for a in _alarms(rig) if a.cleared_at], timeout=6)
        returned = [s for s in _samples(rig) if s.value == 37.0][-1]
    finally:
        collector.stop()
    [alarm] = _alarms(rig)
    assert alarm.excursion_started_at == from_us(excursion[0].source_us)
    assert alarm.raised_at - alarm.excursion_started_at == timedelta(seconds=1.0)
    assert alarm.cleared_at - from_us(returned.source_us) == timedelta(seconds=0.8)
    assert alarm.peak_value == 38.6 and alarm.state == "returned"


def test_the_live_tile_says_out_of_limits_while_the_on_delay_runs_and_shows_the_heartbeat(rig):
    _timing(rig, on_delay=600, off_delay=0)
    collector = rig.collector()
    try:
        wait_for(lambda: collector.connected and rig.values())
        rig.set_temp(38.4)
        wait_for(lambda: 38.4 in rig.values())
        time.sleep(1.6)  # keep-alives come while the value stays the same

        def reading() -> Any:
            with Session(rig.engine) as sess:
                return next(r for r in ops.latest_readings(sess, rig.asset_id) if r.tag_id == rig.tag_id)

        r = wait_for(lambda: (lambda r: r if r.alive_at and r.alive_at > r.source_time + timedelta(seconds=1)
                              else None)(reading()), timeout=5)
    finally:
        collector.stop()
    assert not r.in_alarm and _alarms(rig) == []
    assert r.excursion == "above the high limit 38 C; alarm if it lasts 600 s"
    assert r.alive_at > r.source_time  # "unchanged since X, connection alive at Y"


def test_a_server_that_omits_timestamps_gives_null_server_times_and_the_time_source_used(rig):
    collector = rig.collector()
    path = "-".join(rig.code.split("-")[:2]) + ".Temperature"  # the simulator's name of the rig's incubator
    try:
        wait_for(lambda: collector.connected and rig.values())
        before = utcnow_us()
        rig.sim.call(partial(rig.sim.write, path, 37.31, server_time=False))
        rig.sim.call(partial(rig.sim.write, path, 37.32, source_time=False))
        time.sleep(0.05)
        rig.sim.call(partial(rig.sim.write, path, 37.33, source_time=False, server_time=False))
        wait_for(lambda: {37.31, 37.32, 37.33} <= set(rig.values()))
        after = utcnow_us()
    finally:
        collector.stop()
    by_value = {s.value: s for s in _samples(rig)}
    no_server, no_source, neither = by_value[37.31], by_value[37.32], by_value[37.33]
    assert no_server.server_us is None and no_server.time_source == 0
    assert no_source.server_us is not None and no_source.source_us == no_source.server_us \
        and no_source.time_source == 1
    assert neither.server_us is None and neither.time_source == 2 and before <= neither.source_us <= after
    assert all(s.source_us > before - 3600 * 10**6 for s in (no_server, no_source, neither))  # never 1601


def test_requested_and_revised_intervals_are_kept_per_tag_and_the_server_clock_offset(rig):
    collector = rig.collector()
    try:
        wait_for(lambda: collector.connected and rig.values())

        def kept() -> Any:
            with Session(rig.engine) as sess:
                sub = sess.get(TelemetrySubscription, rig.tag_id)
                link = sess.get(TelemetryLink, rig.asset_id)
                return (sub, link) if sub and link else None

        sub, link = wait_for(kept, timeout=5)
    finally:
        collector.stop()
    assert sub.requested_sampling_ms == 0 and sub.revised_sampling_ms is not None
    assert sub.requested_publishing_ms == 50 and sub.revised_publishing_ms is not None
    assert link.server_offset_us is not None and abs(link.server_offset_us) < 2_000_000  # same host clock


def utcnow_us() -> int:
    from app.db import utcnow
    from equipment.telemetry import to_us

    return to_us(utcnow())


def test_a_notification_lost_on_the_way_is_recovered_by_republish_and_is_not_a_gap(rig, monkeypatch):
    from asyncua.client.ua_client import UaClient

    original = UaClient.publish
    dropped: list[int] = []

    async def lossy_publish(self: Any, acks: Any) -> Any:
        response = await original(self, acks)
        message = response.Parameters.NotificationMessage
        if lose_next and not dropped and message.NotificationData:
            dropped.append(message.SequenceNumber)  # this response never arrives: nothing acknowledges it
            return await original(self, [])
        return response

    lose_next = False
    monkeypatch.setattr(UaClient, "publish", lossy_publish)
    collector = rig.collector()
    try:
        wait_for(lambda: collector.connected and rig.values())
        lose_next = True
        rig.set_temp(37.61)
        wait_for(lambda: dropped, timeout=5)
        time.sleep(0.2)
        rig.set_temp(37.62)
        wait_for(lambda: 37.62 in rig.values(), timeout=5)
    finally:
        collector.stop()
    assert 37.61 in rig.values()  # the lost notification's value, recovered
    assert [g for g in rig.gaps_while_running() if g.cause == "missed_sequence"] == []


def test_keep_alive_count_asks_for_the_smallest_when_one_publishing_interval_is_enough():
    from equipment.opcua.collector import keepalive_count

    assert keepalive_count(500, 10.0) == 0  # the server's smallest: a keep-alive after each empty interval
    assert keepalive_count(600, 10.0) == 0
    assert keepalive_count(250, 10.0) == 2
    assert keepalive_count(50, 10.0) == 10
    assert keepalive_count(50, 0.4) == 2  # well inside a short stale limit


def test_at_the_default_publishing_interval_a_steady_value_has_a_heartbeat_every_two_intervals_at_most(
        rig, monkeypatch):
    """At 500 ms the heartbeats that run alarm delays on the clock come at least every 1 s (the asyncua
    server sends a keep-alive after the second empty interval when asked for its smallest count)."""
    from equipment.opcua.collector import Collector
    from equipment.opcua.writer import TelemetryWriter
    from equipment.telemetry import Heartbeat
    from tests.equipment.test_collector import FAST

    beats: list[float] = []
    submit = TelemetryWriter.submit

    def recording(self: Any, item: Any) -> None:
        if isinstance(item, Heartbeat):
            beats.append(time.monotonic())
        submit(self, item)

    monkeypatch.setattr(TelemetryWriter, "submit", recording)
    collector = Collector(rig.url, spool_path=rig.spool, asset_codes=[rig.code],
                          **{**FAST, "publishing_interval_ms": 500}).start_in_thread()
    try:
        wait_for(lambda: collector.connected and rig.values())
        rig.set_temp(37.2)
        wait_for(lambda: 37.2 in rig.values())
        beats.clear()
        time.sleep(4.2)  # the value stays the same: only keep-alives arrive
    finally:
        collector.stop()
    spacing = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) >= 4 and max(spacing) < 1.0 + 0.3, spacing
