"""Lot review benchmark: the QA lot review page of a completed 14-day MsNK batch whose bioreactor has its
full telemetry (10 tags at 1 Hz for 14 days, as in the ingest benchmark) and with 300 more audit entries
on the lot's records, against the batch page of the same batch measured in the same run.
Target: review p95 <= 300 ms and <= 3x the batch page's p95.

    .venv/bin/python bench/lot_review.py                  # both backends; BENCH_DB=sqlite for one
    BENCH_DAYS=2 BENCH_REQUESTS=20 .venv/bin/python bench/lot_review.py
"""
from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import timedelta

from _equipment_setup import backends, database
from sqlalchemy import text

DAYS = float(os.environ.get("BENCH_DAYS", "14"))
TAGS = 10
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "40"))
AUDIT_CHANGES = 300
CHUNK = 200_000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def build(url: str):  # type: ignore[no-untyped-def]
    from app import create_app, db
    from app.audit import Actor, acting_as
    from app.db import make_engine, utcnow
    from batches.quality import operations as quality
    from config import TestConfig
    from equipment import operations as equipment
    from equipment.models import Asset
    from equipment.telemetry import sample_insert
    from tests.batches.execution import scenario
    from tests.batches.quality.serve_lot import build_lot

    config = TestConfig()
    config.DATABASE_URL = url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix="nkmes-bench-")
    app = create_app(config)
    with app.app_context():
        info = scenario.build(db.session, batches=1)
        info.update(build_lot(db.session, info))
        bioreactor = db.session.query(Asset).filter_by(code=info["batches"][0]["bioreactor"]).one()
        with acting_as(Actor(None, "bench")):
            tag_ids = [equipment.add_tag(db.session, bioreactor, node_id=f"ns=2;s=BR.T{i}", parameter=f"T{i}",
                                         unit="C", low_limit=30.0, high_limit=44.0).id for i in range(TAGS)]
        db.session.commit()
        lot = quality.get_lot(db.session, info["lot_id"])
        units = quality.units_of_batch(db.session, lot.batch_id)
        for n in range(AUDIT_CHANGES):  # each move is one audited update of a bag
            with acting_as(Actor(None, "bench")):
                quality.record_storage_location(db.session, units[n % len(units)], f"FRIDGE-{n}", "bench move")
        db.session.commit()
        db.session.remove()
    engine = make_engine(url)
    end = utcnow()
    start = end - timedelta(days=DAYS)
    with engine.begin() as conn:  # the batch was in the bioreactor for the whole window
        conn.execute(text("UPDATE equipment_occupancy SET started_at = :s WHERE batch_id = :b"),
                     {"s": start, "b": info["batch_id"]})
    seconds = int(DAYS * 86400)
    start_us = int(start.timestamp() * 1_000_000)
    rng = random.Random(1)
    insert = sample_insert(engine.dialect.name)
    written = 0
    for first in range(0, seconds, CHUNK // TAGS):
        rows = [{"tag_id": tag, "source_us": start_us + s * 1_000_000, "server_us": start_us + s * 1_000_000,
                 "value": 37.0 + rng.gauss(0, 0.05), "status_code": 0}
                for s in range(first, min(seconds, first + CHUNK // TAGS)) for tag in tag_ids]
        with engine.begin() as conn:
            conn.execute(insert, rows)
        written += len(rows)
    engine.dispose()
    return app, info, written


def run(backend: str) -> bool:
    url, server = database(backend)
    try:
        started = time.perf_counter()
        app, info, written = build(url)
        setup = time.perf_counter() - started
        from tests.conftest import CSRFClient  # sends the form's CSRF token, as a browser does

        app.test_client_class = CSRFClient
        client = app.test_client()
        login = client.post("/login", data={"username": info["users"]["qa"], "password": info["password"]})
        assert login.status_code == 302, login.status_code
        review_url, batch_url = f"/quality/lots/{info['lot_id']}/review", f"/batches/{info['batch_id']}"
        for url_ in (review_url, batch_url):  # warm up
            assert client.get(url_).status_code == 200
        review, batch = [], []
        for _ in range(REQUESTS):
            for url_, times in ((review_url, review), (batch_url, batch)):
                t0 = time.perf_counter()
                response = client.get(url_)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
        page = client.get(review_url).get_data(as_text=True)
        assert "Chain of identity" in page and "bench move" in page
        r95, b95 = p95(review), p95(batch)
        met = r95 <= 300 and r95 <= 3 * b95
        print(f"{backend:<11} {written:>11,} samples ({DAYS:g} days x {TAGS} tags), {AUDIT_CHANGES} audit changes, "
              f"set-up {setup:.0f} s: lot review p95 {r95:.1f} ms, batch page p95 {b95:.1f} ms, ratio "
              f"{r95 / b95:.2f} (target <= 300 ms and <= 3.00: {'met' if met else 'NOT met'})")
        return met
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    results = [run(name) for name in backends()]
    print("RESULT: target met" if all(results) else "RESULT: target NOT met (see the lines above)")
