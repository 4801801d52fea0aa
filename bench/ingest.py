"""Ingest benchmark: samples per second through the collector's writer (samples, per-minute rollups,
alarm evaluation, gaps; one transaction per batch) against a plain single-transaction executemany of
the same rows into the same table, measured in the same run. Target: >= 20,000 samples/s sustained
and >= 0.5 of the baseline's rate.

    .venv/bin/python bench/ingest.py            # both backends; BENCH_DB=sqlite for one
    BENCH_SAMPLES=200000 .venv/bin/python bench/ingest.py
"""
from __future__ import annotations

import os
import random
import tempfile
import time

from _equipment_setup import backends, database, make_tags
from sqlalchemy import text

from app.db import make_engine
from equipment.opcua.writer import TelemetryWriter
from equipment.telemetry import SampleIn, sample_insert

TAGS = 10
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200000"))
BATCH = int(os.environ.get("BENCH_BATCH", "5000"))


def rows(tag_ids: list[int], start_us: int, count: int) -> list[SampleIn]:
    rng = random.Random(1)
    per_tag = count // len(tag_ids)
    out = []
    for i in range(per_tag):  # 1 Hz per tag, interleaved as the collector receives them
        t = start_us + i * 1_000_000
        for tag_id in tag_ids:
            out.append(SampleIn(tag_id, t, t, 37.0 + rng.gauss(0, 0.05), 0))
    return out


def run(backend: str) -> None:
    url, server = database(backend)
    try:
        tag_ids = make_tags(url, TAGS)
        baseline_rows = rows(tag_ids, 1_700_000_000_000_000, SAMPLES)
        writer_rows = rows(tag_ids, 1_800_000_000_000_000, SAMPLES)
        engine = make_engine(url)
        started = time.perf_counter()
        with engine.begin() as conn:  # baseline: one transaction, one executemany
            conn.execute(sample_insert(engine.dialect.name), [
                {"tag_id": s.tag_id, "source_us": s.source_us, "server_us": s.server_us, "value": s.value,
                 "status_code": s.status_code} for s in baseline_rows])
        baseline = len(baseline_rows) / (time.perf_counter() - started)
        writer = TelemetryWriter(url, os.path.join(tempfile.mkdtemp(), "spool.sqlite3"), batch_size=BATCH)
        started = time.perf_counter()
        for i in range(0, len(writer_rows), BATCH):
            writer.handle(writer_rows[i:i + BATCH])
        elapsed = time.perf_counter() - started
        rate = len(writer_rows) / elapsed
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT COUNT(*) FROM telemetry_sample WHERE source_us >= 1800000000000000")).scalar_one()
            rollups = conn.execute(text("SELECT SUM(sample_count) FROM telemetry_rollup WHERE minute >= 30000000")).scalar_one()
        writer.stop()
        engine.dispose()
        assert stored == len(writer_rows) == rollups, (stored, rollups)
        print(f"{backend:<11} {len(writer_rows):>9,} samples in batches of {BATCH}: writer {rate:>10,.0f}/s, "
              f"baseline executemany {baseline:>10,.0f}/s, ratio {rate / baseline:.2f} "
              f"(target >= 0.50 and >= 20,000/s: {'met' if rate >= 20000 and rate / baseline >= 0.5 else 'NOT met'})")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    for name in backends():
        run(name)
