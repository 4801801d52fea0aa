"""Executed batch record PDF benchmark: the record of a full 14-day MsNK batch (every step recorded and
signed, lot in testing) whose incubator and bioreactor each carry 4 monitored parameters with per-minute
rollups over their whole occupancy (what the telemetry charts read for windows of 10 h and more), one
alarm and one monitoring gap, then the same record with 2x and 4x the steps and entries (each step with
its entries and signatures copied inside the batch; the charts stay the same).
Target: 1x at most 3 s, 2x at most 2.2 times 1x; 4x and peak memory reported.

    .venv/bin/python bench/batch_record_pdf.py            # both backends; BENCH_DB=sqlite for one
    BENCH_SAVE=/tmp/record.pdf ...                        # also keep the rendered PDF to look at
"""
from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from _equipment_setup import backends, database
from sqlalchemy import insert, select

TAGS = (("temperature", "C", 36.0, 38.0), ("co2", "%", 4.5, 5.5), ("humidity", "%", 85.0, None),
        ("ph", "pH", 7.0, 7.4))
REPEATS = 5


def build(url: str):  # type: ignore[no-untyped-def]
    from app import create_app, db
    from app.audit import Actor, acting_as
    from batches.execution.models import Batch
    from batches.execution.exceptions import occupancies_of
    from config import TestConfig
    from equipment import operations as equipment
    from equipment.models import Alarm, Asset, TelemetryGap, TelemetryRollup
    from tests.batches.execution import scenario
    from tests.batches.quality.serve_lot import build_lot

    config = TestConfig()
    config.DATABASE_URL = url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix="nkmes-bench-")
    app = create_app(config)
    with app.app_context():
        sess = db.session
        info = scenario.build(sess, batches=1)
        info.update(build_lot(sess, info))
        sess.commit()
        batch = sess.get(Batch, info["batch_id"])
        rollups = 0
        for occ in occupancies_of(sess, batch):
            asset = sess.get(Asset, occ.asset_id)
            end = occ.ended_at or occ.started_at + timedelta(days=7)
            with acting_as(Actor(None, "bench")):
                tags = [equipment.add_tag(sess, asset, node_id=f"ns=2;s={asset.code}.{name}", parameter=name,
                                          unit=unit, low_limit=low, high_limit=high) for name, unit, low, high in TAGS]
                sess.add(TelemetryGap(asset_id=asset.id, tag_id=None, cause="connection_lost",
                                      started_at=occ.started_at + timedelta(days=2),
                                      ended_at=occ.started_at + timedelta(days=2, hours=3), detail="bench gap"))
                sess.add(Alarm(asset_id=asset.id, tag_id=tags[0].id, parameter=tags[0].parameter, unit="C",
                               limit_kind="high", limit_value=38.0,
                               excursion_started_at=occ.started_at + timedelta(days=3),
                               raised_at=occ.started_at + timedelta(days=3, minutes=10),
                               cleared_at=occ.started_at + timedelta(days=3, hours=1), peak_value=38.6,
                               state="cleared"))
            sess.flush()
            m0, m1 = int(occ.started_at.timestamp() // 60), int(end.timestamp() // 60)
            for tag, (_, _, low, high) in zip(tags, TAGS):
                centre = (low + high) / 2 if high is not None else low + 5
                rows = [{"tag_id": tag.id, "minute": m, "min_value": centre - 0.1, "max_value": centre + 0.1,
                         "mean_value": centre + 0.02 * ((m % 37) - 18) / 18, "sample_count": 60}
                        for m in range(m0, m1) if not (m0 + 2 * 1440 <= m < m0 + 2 * 1440 + 180)]
                sess.execute(insert(TelemetryRollup), rows)
                rollups += len(rows)
        sess.commit()
        db.session.remove()
    return app, info, rollups


def scale_steps(app, batch_id: int, factor: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Copy the batch's original steps (with entries and signatures) until it has `factor` times as many."""
    from app import db
    from app.signatures import Signature
    from batches.execution.models import BatchStep, StepEntry

    with app.app_context():
        sess = db.session
        steps = list(sess.execute(select(BatchStep).where(BatchStep.batch_id == batch_id)
                                  .order_by(BatchStep.position)).scalars())
        originals = [s for s in steps if "~" not in s.step_key]
        copies = len(steps) // len(originals)
        step_cols = [c.key for c in BatchStep.__table__.columns if c.key != "id"]
        entry_cols = [c.key for c in StepEntry.__table__.columns if c.key not in ("id", "replaces_id")]
        sig_cols = [c.key for c in Signature.__table__.columns if c.key not in ("id", "record_id", "seal")]
        top = max(s.position for s in steps)
        for n in range(copies, factor):
            for step in originals:
                top += 1
                values = {c: getattr(step, c) for c in step_cols}
                values.update(position=top, step_key=f"{step.step_key}~{n}")
                new_id = sess.execute(insert(BatchStep).values(**values).returning(BatchStep.id)).scalar_one()
                entries = [{**{c: getattr(e, c) for c in entry_cols}, "step_id": new_id}
                           for e in sess.execute(select(StepEntry).where(StepEntry.step_id == step.id)).scalars()]
                if entries:
                    sess.execute(insert(StepEntry), entries)
                sigs = [{**{c: getattr(s, c) for c in sig_cols}, "record_id": str(new_id),
                         "seal": f"{s.seal[:40]}{new_id:08d}{n:016d}"[:64]}
                        for s in sess.execute(select(Signature).where(Signature.record_table == "batch_step",
                                                                      Signature.record_id == str(step.id))).scalars()]
                if sigs:
                    sess.execute(insert(Signature), sigs)
        sess.commit()
        count = len(sess.execute(select(BatchStep.id).where(BatchStep.batch_id == batch_id)).all())
        entries = len(sess.execute(select(StepEntry.id).where(StepEntry.batch_id == batch_id)).all())
        db.session.remove()
    return count, entries


def render_seconds(app, batch_id: int) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    from app import db
    from batches.documents.batch_record import build_batch_record
    from batches.execution.models import Batch

    times = []
    size = pages = 0
    for n in range(REPEATS + 1):  # the first render warms the caches and is not counted
        with app.app_context():
            batch = db.session.get(Batch, batch_id)
            t0 = time.perf_counter()
            record = build_batch_record(db.session, batch)
            if n:
                times.append(time.perf_counter() - t0)
            size, pages = len(record.pdf), record.pages
            if os.environ.get("BENCH_SAVE"):
                Path(os.environ["BENCH_SAVE"]).write_bytes(record.pdf)
            db.session.remove()
    return statistics.median(times), size, pages


def peak_memory(app, batch_id: int) -> float:  # type: ignore[no-untyped-def]
    from app import db
    from batches.documents.batch_record import render_batch_record
    from batches.execution.models import Batch

    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        tracemalloc.start()
        render_batch_record(db.session, batch)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        db.session.remove()
    return peak / 1e6


def run(backend: str) -> list[str]:
    url, server = database(backend)
    misses = []
    try:
        app, info, rollups = build(url)
        batch_id = info["batch_id"]
        figures = {}
        for factor in (1, 2, 4):
            steps, entries = scale_steps(app, batch_id, factor)
            seconds, size, pages = render_seconds(app, batch_id)
            memory = peak_memory(app, batch_id)
            figures[factor] = seconds
            print(f"{backend:<11} {factor}x: {steps} steps, {entries} entries, {rollups:,} rollup rows charted: "
                  f"{seconds:.2f} s (median of {REPEATS}), {pages} pages, {size / 1024:.0f} KiB, "
                  f"peak traced memory {memory:.1f} MB")
        r2, r4 = figures[2] / figures[1], figures[4] / figures[1]
        print(f"{backend:<11} ratios: 2x/1x {r2:.2f} (target <= 2.20), 4x/1x {r4:.2f}; 1x {figures[1]:.2f} s "
              f"(target <= 3.00 s); max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if figures[1] > 3.0:
            misses.append(f"{backend} 1x {figures[1]:.2f} s > 3 s")
        if r2 > 2.2:
            misses.append(f"{backend} 2x/1x {r2:.2f} > 2.2")
    finally:
        if server is not None:
            server.stop()
    return misses


if __name__ == "__main__":
    missed = [m for name in backends() for m in run(name)]
    print("RESULT: target met" if not missed else "RESULT: target NOT met: " + "; ".join(missed))
