"""Alarm latency for a steady excursion, under full ingest.

A load simulator publishes many noisy signals (every 50 ms) while a second OPC UA server holds one
incubator temperature whose value only this script writes. Each trial writes one value above the high
limit, once (OPC UA then sends nothing more: the value is steady), and times how long the alarm takes
to appear in the database. Target: the alarm within on-delay + 2 s, p99 over 20 trials.
Baseline, measured in the same run: the same excursion while the value keeps changing (a new sample
every 100 ms), the case where an alarm is raised by samples alone.

BENCH_DB=sqlite|postgresql (default both), BENCH_TRIALS (20), BENCH_ON_DELAY_S (1.0), BENCH_LOAD_TAGS (100),
BENCH_PUBLISHING_MS (500, the collector's default publishing interval).
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _equipment_setup import backends, database  # noqa: E402

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.audit import Actor, acting_as  # noqa: E402
from app.db import make_engine  # noqa: E402
from equipment import operations as ops  # noqa: E402
from equipment.models import Alarm, TelemetrySample  # noqa: E402
from equipment.opcua.collector import Collector  # noqa: E402
from equipment.opcua.simulator import Signal, Simulator  # noqa: E402
from tests.pg import free_port  # noqa: E402

TRIALS = int(os.environ.get("BENCH_TRIALS", "20"))
ON_DELAY = float(os.environ.get("BENCH_ON_DELAY_S", "1.0"))
LOAD_TAGS = int(os.environ.get("BENCH_LOAD_TAGS", "100"))
PUBLISHING_MS = float(os.environ.get("BENCH_PUBLISHING_MS", "500"))  # the collector's default
BASELINE_TRIALS = max(5, TRIALS // 2)
TARGET_S = ON_DELAY + 2.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def setup(url: str, load: Simulator, trial: Simulator) -> int:
    engine = make_engine(url)
    with acting_as(Actor(None, "bench")), Session(engine) as sess:
        for n in range(LOAD_TAGS // 10):
            asset = ops.create_asset(sess, code=f"LOAD-{n:02d}", name="load", asset_type="co2_incubator",
                                     location="B", endpoint_url=load.endpoint)
            for i in range(10):
                ops.add_tag(sess, asset, node_id=f"ns=2;s=LOAD{n:02d}.S{i}", parameter=f"S{i}", unit="C",
                            low_limit=-1000.0, high_limit=1000.0)
        asset = ops.create_asset(sess, code="INC-BENCH", name="trial", asset_type="co2_incubator", location="B",
                                 endpoint_url=trial.endpoint)
        tag = ops.add_tag(sess, asset, node_id="ns=2;s=INC.Temperature", parameter="Temperature", unit="C",
                          low_limit=36.0, high_limit=38.0, on_delay_s=ON_DELAY, off_delay_s=0.0)
        sess.commit()
        tag_id = tag.id
    engine.dispose()
    return tag_id


def alarm_count(engine: object, tag_id: int) -> int:
    with Session(engine) as sess:
        return sess.execute(select(func.count()).select_from(Alarm).where(Alarm.tag_id == tag_id)).scalar_one()


def open_alarm(engine: object, tag_id: int) -> bool:
    with Session(engine) as sess:
        return bool(sess.execute(select(func.count()).select_from(Alarm).where(
            Alarm.tag_id == tag_id, Alarm.cleared_at.is_(None))).scalar_one())


def trial_once(engine: object, sim: Simulator, tag_id: int, steady: bool) -> float:
    """Seconds from writing the excursion to its alarm being in the database."""
    sim.call(sim.write, "INC.Temperature", 37.0)
    deadline = time.monotonic() + 10
    while open_alarm(engine, tag_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    before = alarm_count(engine, tag_id)
    written = time.monotonic()
    sim.call(sim.write, "INC.Temperature", 38.5)
    step = 0
    while alarm_count(engine, tag_id) == before:
        if time.monotonic() - written > TARGET_S + 10:
            return math.inf
        if not steady and time.monotonic() - written > 0.1 * (step + 1):
            step += 1
            sim.call(sim.write, "INC.Temperature", 38.5 + (step % 2) / 100)
        time.sleep(0.01)
    return time.monotonic() - written


def run(backend: str) -> bool:
    url, server = database(backend)
    load = Simulator(port=free_port(), update_interval=0.05, door_openings=False, seed=1, equipment=[
        (f"LOAD{n:02d}", "co2_incubator", f"LOAD{n:02d}",
         [Signal(f"LOAD{n:02d}", f"S{i}", "C", 37.0, 0.05) for i in range(10)]) for n in range(LOAD_TAGS // 10)])
    trial = Simulator(port=free_port(), update_interval=3600, door_openings=False,
                      equipment=[("INC", "co2_incubator", "INC", [Signal("INC", "Temperature", "C", 37.0, 0.0)])])
    load.start_in_thread()
    trial.start_in_thread()
    tag_id = setup(url, load, trial)
    engine = make_engine(url)
    collector = Collector(url, spool_path=Path(tempfile.mkdtemp(prefix="nkmes-bench-")) / "spool.sqlite3",
                          publishing_interval_ms=PUBLISHING_MS, reload_interval=600).start_in_thread()
    try:
        deadline = time.monotonic() + 30
        while not collector.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        with Session(engine) as sess:
            start_count = sess.execute(select(func.count()).select_from(TelemetrySample)).scalar_one()
        started = time.monotonic()
        baseline = [trial_once(engine, trial, tag_id, steady=False) for _ in range(BASELINE_TRIALS)]
        steady = [trial_once(engine, trial, tag_id, steady=True) for _ in range(TRIALS)]
        with Session(engine) as sess:
            rate = (sess.execute(select(func.count()).select_from(TelemetrySample)).scalar_one() - start_count) \
                / (time.monotonic() - started)
            exact = sess.execute(select(Alarm).where(Alarm.tag_id == tag_id)).scalars().all()
    finally:
        collector.stop()
        load.stop_thread()
        trial.stop_thread()
        engine.dispose()
        if server is not None:
            server.stop()
    delays = {round((a.raised_at - a.excursion_started_at).total_seconds(), 6) for a in exact}
    print(f"{backend}: publishing interval {PUBLISHING_MS:g} ms; ingest {rate:,.0f} samples/s from {LOAD_TAGS} load tags during the trials")
    print(f"{backend}: changing value (baseline, {len(baseline)} trials): median {statistics.median(baseline):.2f} s, "
          f"p99 {p99(baseline):.2f} s")
    print(f"{backend}: steady value ({len(steady)} trials): median {statistics.median(steady):.2f} s, "
          f"p99 {p99(steady):.2f} s, max {max(steady):.2f} s; {p99(steady) / p99(baseline):.2f}x the baseline p99; "
          f"target {TARGET_S:.1f} s (on-delay {ON_DELAY:g} s + 2 s)")
    print(f"{backend}: raised_at - excursion start of every alarm: {sorted(delays)} s")
    return p99(steady) <= TARGET_S


def main() -> None:
    missed = [b for b in backends() if not run(b)]
    print("RESULT: target met" if not missed else f"RESULT: p99 above on-delay + 2 s on {', '.join(missed)}")


if __name__ == "__main__":
    main()
