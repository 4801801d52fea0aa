"""The collector against a real asyncua server on a free port: ingest, reconnect after a restart,
a database outage mid-run, kill -9 of the collector, a clean stop by SIGTERM/SIGINT, and the per-asset
lock. Bounded in time."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.db import make_engine, utcnow
from equipment import operations as ops
from equipment.models import Alarm, TelemetryGap, TelemetryRollup, TelemetrySample
from equipment.opcua.collector import AssetLocks, Collector, _key_halves, asset_lock_key
from equipment.opcua.collector import main as collector_main
from equipment.opcua.simulator import Signal, Simulator
from equipment.opcua.spool import Spool
from equipment.opcua.writer import TelemetryWriter
from equipment.telemetry import GapEvent, SampleIn, from_us
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
FAST = {"publishing_interval_ms": 50, "reconnect_delay": 0.3, "connect_timeout": 2.0, "reload_interval": 60,
        "writer_options": {"flush_interval": 0.05, "retry_interval": 0.2, "lock_timeout_ms": 300}}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


_counter = iter(range(1, 10_000))
STOPPED = "collector stopped"
SIM_ASSETS = [f"INC-T{n}" for n in range(1, 9)]


@pytest.fixture(scope="module")
def simulator() -> Any:
    """One real OPC UA server for the module; each test uses its own simulated incubator on it."""
    equipment = [(code, "co2_incubator", code, [Signal(code, "Temperature", "C", 37.0, 0.0, low=36.0, high=38.0),
                                                Signal(code, "CO2", "%", 5.0, 0.0, low=4.5, high=5.5)])
                 for code in SIM_ASSETS]
    sim = Simulator(port=free_port(), update_interval=3600, equipment=equipment, door_openings=False)
    sim.start_in_thread()
    yield sim
    sim.stop_thread()


@pytest.fixture()
def rig(engine: Any, simulator: Simulator, tmp_path: Path, backend: str) -> Any:
    """An incubator on the simulator whose values the test sets exactly, and its asset in the database."""
    n = next(_counter)
    code = SIM_ASSETS[n % len(SIM_ASSETS)]
    sim = simulator
    db_code = f"{code}-{backend[:2].upper()}{n}"
    with acting_as(Actor(None, "test")), Session(engine) as sess:
        asset = ops.create_asset(sess, code=db_code, name=code, asset_type="co2_incubator", location="B2",
                                 endpoint_url=sim.endpoint)
        tag = ops.add_tag(sess, asset, node_id=f"ns=2;s={code}.Temperature", parameter="Temperature", unit="C",
                          low_limit=36.0, high_limit=38.0)
        co2 = ops.add_tag(sess, asset, node_id=f"ns=2;s={code}.CO2", parameter="CO2", unit="%",
                          low_limit=4.5, high_limit=5.5)
        sess.commit()
        ids = {"asset": asset.id, "tag": tag.id, "co2": co2.id}

    class Rig:
        pass

    r = Rig()
    r.sim, r.code, r.engine, r.spool = sim, db_code, engine, tmp_path / "spool.sqlite3"
    r.asset_id, r.tag_id, r.co2_id = ids["asset"], ids["tag"], ids["co2"]
    r.url = str(engine.url.render_as_string(hide_password=False))

    def set_temp(value: float) -> None:
        sim.call(sim.write, f"{code}.Temperature", value)

    def values() -> list[float]:
        with Session(engine) as sess:
            return list(sess.execute(select(TelemetrySample.value).where(TelemetrySample.tag_id == r.tag_id)
                                     .order_by(TelemetrySample.source_us)).scalars())

    def gaps() -> list[TelemetryGap]:
        with Session(engine) as sess:
            return list(sess.execute(select(TelemetryGap).where(TelemetryGap.asset_id == r.asset_id)
                                     .order_by(TelemetryGap.id)).scalars())

    def gaps_while_running() -> list[TelemetryGap]:
        """The gaps, without the one a clean stop of the collector opens at the moment it stops."""
        return [g for g in gaps() if not (g.cause == "collector_restart" and g.detail.startswith(STOPPED))]

    def collector() -> Collector:
        return Collector(r.url, spool_path=r.spool, asset_codes=[db_code], **FAST).start_in_thread()

    r.set_temp, r.values, r.gaps, r.collector = set_temp, values, gaps, collector
    r.gaps_while_running = gaps_while_running
    return r


def test_subscribed_values_are_stored_with_rollups(rig):
    collector = rig.collector()
    try:
        wait_for(lambda: rig.values())
        for i in range(1, 6):
            rig.set_temp(37.0 + i / 100)
            time.sleep(0.02)
        wait_for(lambda: rig.values()[-1:] == [37.05])
    finally:
        collector.stop()
    stored = rig.values()
    assert stored[-5:] == [37.01, 37.02, 37.03, 37.04, 37.05]  # every change, none coalesced, in order
    with Session(rig.engine) as sess:
        count = sess.execute(select(func.sum(TelemetryRollup.sample_count))
                             .where(TelemetryRollup.tag_id == rig.tag_id)).scalar_one()
        assert count == len(stored)
        sample = sess.execute(select(TelemetrySample).where(TelemetrySample.tag_id == rig.tag_id)).scalars().first()
        assert sample.server_us is not None and sample.status_code == 0
        readings = ops.latest_readings(sess, rig.asset_id)
    assert {r.parameter for r in readings} == {"Temperature", "CO2"}
    assert [r.value for r in readings if r.parameter == "Temperature"] == [37.05]


def test_server_restart_records_a_gap_with_its_cause_and_data_resumes(rig):
    collector = rig.collector()
    try:
        wait_for(lambda: rig.values())
        rig.sim.call(rig.sim.restart, 0.5)
        wait_for(lambda: [g for g in rig.gaps() if g.ended_at is not None], timeout=15)
        rig.set_temp(37.3)
        wait_for(lambda: 37.3 in rig.values())
    finally:
        collector.stop()
    gap = rig.gaps_while_running()[-1]
    assert gap.cause == "server_restart" and "server restarted" in gap.detail
    assert gap.ended_at >= gap.started_at
    values = rig.values()
    assert len(values) == len(set(zip(values, range(len(values)))))  # nothing duplicated by the key
    with Session(rig.engine) as sess:
        assert sess.execute(select(func.count()).select_from(TelemetrySample)
                            .where(TelemetrySample.tag_id == rig.tag_id)).scalar_one() == len(values)


def test_dropped_connections_open_a_connection_lost_gap(rig):
    collector = rig.collector()
    try:
        wait_for(lambda: collector.connected)
        rig.sim.call(_drop, rig.sim)
        wait_for(lambda: [g for g in rig.gaps() if g.ended_at is not None], timeout=15)
    finally:
        collector.stop()
    assert rig.gaps_while_running()[-1].cause == "connection_lost"


async def _drop(sim: Simulator) -> int:
    return sim.drop_connections()


def _hold_database(engine: Any) -> Any:
    """Make the telemetry tables unavailable to other writers (an exclusive lock), as in an outage."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE telemetry_sample IN ACCESS EXCLUSIVE MODE"))
    else:
        conn.exec_driver_sql("COMMIT")  # leave the IMMEDIATE transaction the engine began
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
    return conn


def test_database_outage_spools_and_writes_everything_in_order_when_back(rig):
    collector = rig.collector()
    try:
        wait_for(lambda: rig.values())
        held = _hold_database(rig.engine)
        sent = [round(36.5 + i / 50, 2) for i in range(20)]
        try:
            for value in sent:
                rig.set_temp(value)
                time.sleep(0.03)
            wait_for(lambda: len(collector.writer.spool) >= len(sent) and not collector.writer.database_ok)
        finally:
            held.rollback() if rig.engine.dialect.name == "postgresql" else held.exec_driver_sql("ROLLBACK")
            held.close()
        wait_for(lambda: rig.values()[-len(sent):] == sent, timeout=15)
        wait_for(lambda: len(collector.writer.spool) == 0)
    finally:
        collector.stop()
    values = rig.values()
    assert values[-len(sent):] == sent
    with Session(rig.engine) as sess:
        keys = sess.execute(select(TelemetrySample.source_us).where(TelemetrySample.tag_id == rig.tag_id)).scalars().all()
    assert len(keys) == len(set(keys)) == len(values)


def test_kill_9_of_the_collector_then_restart_loses_nothing_stored_and_records_the_gap(rig):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "equipment.opcua.collector", "--database-url", rig.url,
               "--spool", str(rig.spool), "--assets", rig.code, "--publishing-ms", "50", "--reconnect-delay", "0.3"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: rig.values(), timeout=20)
        rig.set_temp(37.2)
        wait_for(lambda: 37.2 in rig.values())
        before = rig.values()
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        rig.set_temp(37.4)  # sent while no collector runs: not collected, so it must show as a gap
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: [g for g in rig.gaps() if g.cause == "collector_restart" and g.ended_at], timeout=20)
        rig.set_temp(37.6)
        wait_for(lambda: 37.6 in rig.values(), timeout=10)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(5)
    after = rig.values()
    assert after[:len(before)] == before
    gap = [g for g in rig.gaps() if g.cause == "collector_restart"][-1]
    assert gap.ended_at is not None and gap.ended_at >= gap.started_at


def test_only_one_collector_locks_an_asset(rig):
    first, second = AssetLocks(rig.url, rig.engine), AssetLocks(rig.url, make_engine(rig.url))
    try:
        assert first.acquire(rig.asset_id) is True
        assert second.acquire(rig.asset_id) is False
        first.release_all()
        assert second.acquire(rig.asset_id) is True
    finally:
        first.release_all()
        second.release_all()
        second.engine.dispose()


def test_an_excursion_through_opc_ua_raises_one_alarm(rig):
    with acting_as(Actor(None, "test")), Session(rig.engine) as sess:
        tag = ops.get_tag(sess, rig.tag_id)
        ops.update_tag(sess, tag, "test timing", node_id=tag.node_id, parameter=tag.parameter, unit="C",
                       low_limit=36.0, high_limit=38.0, on_delay_s=0.15, off_delay_s=0.2, deadband=0.3)
        sess.commit()
    collector = rig.collector()
    try:
        wait_for(lambda: rig.values())
        for value in (38.2, 37.9, 38.3, 38.1, 38.4, 38.2):
            rig.set_temp(value)
            time.sleep(0.1)
        wait_for(lambda: _alarms(rig), timeout=10)
        rig.set_temp(37.0)
        time.sleep(0.3)
        rig.set_temp(37.1)
        wait_for(lambda: [a for a in _alarms(rig) if a.cleared_at], timeout=10)
    finally:
        collector.stop()
    alarms = _alarms(rig)
    assert len(alarms) == 1
    assert alarms[0].limit_kind == "high" and alarms[0].peak_value == 38.4 and alarms[0].state == "returned"


def _alarms(rig: Any) -> list[Alarm]:
    with Session(rig.engine) as sess:
        return list(sess.execute(select(Alarm).where(Alarm.asset_id == rig.asset_id)).scalars())


def test_basic256sha256_sign_and_encrypt_with_the_application_certificate(engine, tmp_path, monkeypatch, backend):
    monkeypatch.setenv("OPCUA_PKI_DIR", str(tmp_path / "pki"))
    code = "INC-SEC"
    sim = Simulator(port=free_port(), update_interval=3600, door_openings=False, security=True,
                    equipment=[(code, "co2_incubator", code, [Signal(code, "Temperature", "C", 37.0, 0.0)])])
    sim.start_in_thread()
    db_code = f"INC-SEC-{backend[:2].upper()}{next(_counter)}"
    try:
        with acting_as(Actor(None, "test")), Session(engine) as sess:
            asset = ops.create_asset(sess, code=db_code, name="secure", asset_type="co2_incubator", location="B2",
                                     endpoint_url=sim.endpoint, security_policy="Basic256Sha256",
                                     security_mode="SignAndEncrypt")
            tag = ops.add_tag(sess, asset, node_id=f"ns=2;s={code}.Temperature", parameter="Temperature", unit="C")
            sess.commit()
            tag_id = tag.id
        url = engine.url.render_as_string(hide_password=False)
        collector = Collector(url, spool_path=tmp_path / "spool.sqlite3", asset_codes=[db_code], **FAST)
        collector.start_in_thread()
        try:
            sim.call(sim.write, f"{code}.Temperature", 37.25)

            def stored() -> list[float]:
                with Session(engine) as sess:
                    return list(sess.execute(select(TelemetrySample.value)
                                             .where(TelemetrySample.tag_id == tag_id)).scalars())

            wait_for(lambda: 37.25 in stored(), timeout=15)
        finally:
            collector.stop()
    finally:
        sim.stop_thread()
    assert (tmp_path / "pki" / "nkmes-cert.der").exists()  # generated on first use


def test_a_stale_subscription_is_a_gap_and_the_collector_resubscribes(rig):
    collector = Collector(rig.url, spool_path=rig.spool, asset_codes=[rig.code],
                          **{**FAST, "stale_after": 1.0}).start_in_thread()
    try:
        wait_for(lambda: collector.connected and rig.values())
        rig.sim.call(rig.sim.stall_subscriptions)
        wait_for(lambda: [g for g in rig.gaps() if g.cause == "stale_subscription"], timeout=10)
        rig.set_temp(37.7)
        wait_for(lambda: 37.7 in rig.values(), timeout=10)
    finally:
        collector.stop()
    gaps = rig.gaps_while_running()
    assert [g.cause for g in gaps] == ["stale_subscription"]  # not also counted as a lost connection
    assert "no notification or keep-alive" in gaps[0].detail and gaps[0].ended_at is not None


SERVICE = [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "services", "run", "opcua-collector"]
MODULE = [sys.executable, "-m", "equipment.opcua.collector"]


@pytest.mark.parametrize("launch, stop_signal", [(SERVICE, signal.SIGTERM), (MODULE, signal.SIGINT)],
                         ids=["service-SIGTERM", "module-SIGINT"])
def test_a_stop_signal_writes_what_was_read_and_the_gap_starts_at_the_stop(rig, tmp_path, launch, stop_signal):
    log_path = tmp_path / "collector.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), DATABASE_URL=rig.url, COLLECTOR_SPOOL=str(rig.spool),
               COLLECTOR_PUBLISHING_MS="50", SECRET_KEY="collector-test",
               COLLECTOR_FLUSH_S="30")  # what is read waits in the writer's batch until the stop
    command = launch if launch is SERVICE else launch + ["--database-url", rig.url, "--assets", rig.code]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_for(lambda: "subscribed to" in log_path.read_text(), timeout=20)
        sent = [37.11, 37.12, 37.13]
        for value in sent:
            rig.set_temp(value)
            time.sleep(0.05)
        time.sleep(1.0)  # twenty publishing intervals: the collector has read them
        assert not set(sent) & set(rig.values())  # read, but not written yet
        stopped_at = utcnow()
        process.send_signal(stop_signal)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert rig.values()[-len(sent):] == sent
    with Session(rig.engine) as sess:
        last_us = sess.execute(select(func.max(TelemetrySample.source_us))
                               .where(TelemetrySample.tag_id == rig.tag_id)).scalar_one()
    gap = rig.gaps()[-1]
    assert (gap.cause, gap.ended_at) == ("collector_restart", None) and gap.detail.startswith(STOPPED)
    assert gap.started_at >= stopped_at > from_us(last_us)  # the time before the stop is not a gap
    log_text = log_path.read_text()
    assert f"{stop_signal.name} received" in log_text and "collector stopped" in log_text


def test_a_stopped_writer_spools_what_it_holds_when_the_database_is_unreachable(tmp_path):
    unreachable = f"sqlite:///{tmp_path / 'no such directory' / 'mes.sqlite3'}"
    writer = TelemetryWriter(unreachable, tmp_path / "spool.sqlite3", flush_interval=30, lock_timeout_ms=100)
    writer.start()
    held = [SampleIn(7, 1_700_000_000_000_000 + i, None, 37.0 + i / 10, 0) for i in range(5)]
    held.append(GapEvent(3, "connection_lost", 1_700_000_000_000_010, "lost"))
    for item in held:
        writer.submit(item)
    assert writer.stop(timeout=10) is True
    assert writer.left_in_spool == len(held) and writer.written == 0
    spool = Spool(tmp_path / "spool.sqlite3")
    try:
        assert [item for _seq, item in spool.peek(100)] == held  # in the order received
    finally:
        spool.close()


@pytest.mark.parametrize("option, value", [("--publishing-ms", "1e9"), ("--publishing-ms", "0"),
                                           ("--reconnect-delay", "nan"), ("--reload-interval", "31536000"),
                                           ("--flush-interval", "abc"), ("--lock-check-interval", "0")])
def test_collector_timing_options_are_bounded_with_a_clear_message(option, value, capsys):
    with pytest.raises(SystemExit) as exited:
        collector_main(["--database-url", "sqlite://", option, value])
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert f"argument {option}:" in message and ("must be between" in message or "must be a number" in message)


def _terminate_backend(engine: Any, pid: int | None) -> None:
    """Cut a connection from the database side, as a restart or a network cut would (waits until it is gone)."""
    if pid is None:
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def _lock_holders(engine: Any, asset_id: int) -> set[int]:
    """The backends that hold the asset's collector lock, as the database sees them."""
    high, low = _key_halves(asset_lock_key(asset_id))
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                     "AND classid = :high AND objid = :low AND objsubid = 1"),
                                {"high": high, "low": low}).scalars())


def _locking_collector(rig: Any, **options: Any) -> Collector:
    settings = {**FAST, "lock_check_interval": 0.2, **options}
    return Collector(rig.url, spool_path=rig.spool, asset_codes=[rig.code], **settings).start_in_thread()


@pytest.mark.backends("postgresql")  # advisory locks live on a connection; SQLite uses file locks
def test_a_dropped_lock_connection_is_noticed_and_the_lock_reacquired_on_a_new_one(rig):
    collector = _locking_collector(rig)
    try:
        wait_for(lambda: collector.connected and rig.values())
        first_pid = collector.locks.backend_pid
        assert _lock_holders(rig.engine, rig.asset_id) == {first_pid}
        _terminate_backend(rig.engine, first_pid)
        rig.set_temp(37.25)  # changes while the lock is being taken again are still read
        wait_for(lambda: collector.locks_lost == 1, timeout=5)
        wait_for(lambda: rig.asset_id in collector.locked_assets and collector.connected, timeout=10)
        new_pid = collector.locks.backend_pid
        assert new_pid != first_pid and _lock_holders(rig.engine, rig.asset_id) == {new_pid}
        rig.set_temp(37.35)
        wait_for(lambda: {37.25, 37.35} <= set(rig.values()), timeout=10)
    finally:
        collector.stop()
    assert rig.gaps_while_running() == []  # read all along: nothing was missed
    assert _lock_holders(rig.engine, rig.asset_id) == set()  # released at the stop


@pytest.mark.backends("postgresql")  # advisory locks live on a connection; SQLite uses file locks
def test_an_asset_taken_by_another_collector_after_a_lost_lock_is_not_written_until_given_back(rig):
    collector = _locking_collector(rig, reload_interval=1.0)
    other_engine = make_engine(rig.url)
    other = AssetLocks(rig.url, other_engine)  # what a second collector holds the asset with
    try:
        wait_for(lambda: collector.connected and rig.values())
        for _attempt in range(10):  # the first collector may win the lock back between the cut and our try
            _terminate_backend(rig.engine, collector.locks.backend_pid)
            if other.acquire(rig.asset_id):
                break
        else:
            raise AssertionError("the lock could not be taken after the first collector's connection was cut")
        wait_for(lambda: rig.asset_id in collector.refused_assets and not collector.sessions, timeout=5)
        stored = rig.values()
        rig.set_temp(37.45)
        time.sleep(1.5)  # longer than a reload and many lock checks: it still keeps off the asset
        assert rig.values() == stored and rig.asset_id not in collector.locked_assets
        other.release_all()
        wait_for(lambda: rig.asset_id in collector.locked_assets and collector.connected, timeout=5)
        rig.set_temp(37.55)
        wait_for(lambda: 37.55 in rig.values(), timeout=10)
    finally:
        collector.stop()
        other.release_all()
        other_engine.dispose()
    gaps = rig.gaps_while_running()  # the time it was not collected shows as a gap, closed by the new data
    assert [g.cause for g in gaps] == ["collector_restart"] and gaps[0].ended_at is not None
