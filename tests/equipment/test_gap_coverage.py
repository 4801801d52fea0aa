"""For each tag, stored samples and gaps together cover the whole monitored time, without holes or
overlap, across clean stops, kill -9, server restarts and database outages (a real asyncua server and
the collector as its own process). Bounded: a few generated sequences of short events."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from app.db import utcnow
from equipment.telemetry import from_us
from tests.equipment.test_collector import ROOT, _hold_database, rig, simulator, wait_for  # noqa: F401

EVENTS = ("stop", "kill", "server_restart", "db_outage")


class Run:
    """The collector as a process, started and stopped by the test; records when monitoring was down."""

    def __init__(self, rig: Any, log_dir: Any):
        self.rig, self.log_dir, self.process = rig, log_dir, None
        self.downtimes: list[tuple[str, datetime, datetime, datetime]] = []  # (how, signalled, exited, relaunched)
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log_path = self.log_dir / f"collector-{self.runs}.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "equipment.opcua.collector", "--database-url", self.rig.url,
                   "--spool", str(self.rig.spool), "--assets", self.rig.code, "--publishing-ms", "50",
                   "--reconnect-delay", "0.3", "--flush-interval", "0.05"]
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        wait_for(lambda: "subscribed to" in log_path.read_text(), timeout=20)
        time.sleep(0.3)

    def end(self, how: str) -> tuple[datetime, datetime]:
        signalled = utcnow()
        self.process.send_signal(signal.SIGTERM if how == "stop" else signal.SIGKILL)
        self.process.wait(20)
        return signalled, utcnow()

    def down_and_up(self, how: str, value: float) -> None:
        signalled, exited = self.end(how)
        self.rig.set_temp(value)  # changed while nothing collects
        relaunched = utcnow()
        self.start()
        self.downtimes.append((how, signalled, exited, relaunched))


def _check_coverage(rig: Any, run: Run) -> None:
    with_times = [(s, from_us(s)) for s in _sample_times(rig)]
    gaps = [g for g in rig.gaps() if g.tag_id in (None, rig.tag_id)]
    for gap in gaps:
        end = gap.ended_at
        inside = [t for _s, t in with_times if gap.started_at < t and (end is None or t < end)]
        assert inside == [], f"samples inside the gap {gap.cause} {gap.started_at}..{end}: {inside}"
    for how, signalled, exited, relaunched in run.downtimes:
        covering = [g for g in gaps if g.started_at <= exited and (g.ended_at is None or g.ended_at >= signalled)]
        assert covering, f"no gap covers the {how} at {signalled}"
        gap = covering[0]
        if how == "stop":
            assert signalled <= gap.started_at <= exited  # the gap starts at the stop
        after = [t for _s, t in with_times if t > gap.started_at]
        resumed = min([relaunched] + after[:1])
        assert gap.ended_at is not None and gap.ended_at >= resumed, \
            f"hole after the {how}: gap ends {gap.ended_at}, monitoring resumed {resumed}"


def _spool_empty(rig: Any) -> bool:
    from equipment.opcua.spool import Spool

    if not rig.spool.exists():
        return True
    spool = Spool(rig.spool)
    try:
        return len(spool) == 0
    finally:
        spool.close()


def _sample_times(rig: Any) -> list[int]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from equipment.models import TelemetrySample

    with Session(rig.engine) as sess:
        return list(sess.execute(select(TelemetrySample.source_us).where(TelemetrySample.tag_id == rig.tag_id)
                                 .order_by(TelemetrySample.source_us)).scalars())


@settings(max_examples=1, deadline=None, phases=[Phase.explicit, Phase.generate], database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=2))
@example(events=["db_outage", "kill", "server_restart", "stop"])
def test_samples_and_gaps_cover_the_monitored_time_without_holes_or_overlap(rig, tmp_path, events):
    run = Run(rig, tmp_path)
    run.start()
    value = 37.0
    try:
        for event in events:
            value = round(value + 0.01, 2)
            if event in ("stop", "kill"):
                run.down_and_up(event, value)
            elif event == "server_restart":
                rig.sim.call(rig.sim.restart, 0.5)
                rig.set_temp(value)
            else:
                held = _hold_database(rig.engine)
                killed = None
                try:
                    rig.set_temp(value)
                    wait_for(lambda: not _spool_empty(rig), timeout=10)
                    if "kill" in events:  # killed while values wait in the spool
                        killed = run.end("kill")
                        value = round(value + 0.005, 3)
                        rig.set_temp(value)
                finally:
                    held.rollback() if rig.engine.dialect.name == "postgresql" else held.exec_driver_sql("ROLLBACK")
                    held.close()
                if killed is not None:
                    relaunched = utcnow()
                    run.start()
                    run.downtimes.append(("kill", killed[0], killed[1], relaunched))
            wait_for(lambda v=value: v in rig.values(), timeout=15)
        run.end("stop")
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(5)
    _check_coverage(rig, run)
