"""Storage benchmark: a 14-day batch of 10 tags at 1 Hz (12,096,000 samples) stored the way the
product stores it: the collector's rows for the recent window, older hours compacted into lossless
per-tag chunks by the compaction job (``equipment.samples.run_compaction``, one transaction per chunk)
as the data arrive, an occupancy of the asset (the batch) covering the whole period, so the retention
triggers run on every compaction.

Signals are what a rocking bioreactor and its incubator report: each tag at its instrument's
resolution (temperature 0.01 C, pH 0.001, ...), slow drift plus noise, source times on the device's
clock with sub-millisecond jitter, server times 0.2 to 4 ms later, a bad-quality dropout (status Bad,
no value) once a day per tag.

Baseline, same run: the same first day of samples as plain rows (the storage before this change), in
bytes per sample. Targets: at most 12 bytes per sample (rows of the recent window, chunks, rollups and
the chunks' audit entries, indexes and TOAST included), the 14-day chart query at most 100 ms and at
least 50 times faster than reading the tag's raw samples, and that raw read (through the same read
interface) equal to the generated original, bit for bit.

    .venv/bin/python bench/telemetry_storage.py                      # full scale, both backends
    BENCH_DAYS=1 BENCH_DB=sqlite .venv/bin/python bench/telemetry_storage.py   # a stated smaller scale
"""
from __future__ import annotations

import math
import os
import random
import struct
import time
from typing import Any, Iterator

from _equipment_setup import backends, database, make_tags
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.db import make_engine
from equipment.chunks import Sample
from equipment.models import CHUNK_SPAN_US, AssetUsage, Tag
from equipment.samples import DEFAULT_RECENT_WINDOW, read_samples, run_compaction, verify_telemetry
from equipment.telemetry import chart_series, from_us

DAYS = float(os.environ.get("BENCH_DAYS", "14"))
TAGS = 10
START_US = 1_800_000_000_000_000 - 1_800_000_000_000_000 % CHUNK_SPAN_US
HOURS = int(DAYS * 24)
# (base, noise sigma, drift amplitude, resolution in decimals) per tag
SIGNALS = [(37.0, 0.02, 0.05, 2), (5.0, 0.03, 0.1, 2), (20.9, 0.1, 0.3, 1), (7.2, 0.003, 0.05, 3),
           (40.0, 1.0, 5.0, 1), (8.0, 0.05, 0.0, 1), (20.0, 0.0, 0.0, 0), (1500.0, 0.3, 40.0, 1),
           (1013.2, 0.2, 3.0, 1), (35.0, 3.0, 10.0, 2)]
COLUMNS = "tag_id, source_us, server_us, value, status_code, time_source"


def signal_hours(index: int, tag_id: int) -> Iterator[list[Sample]]:
    """One tag's samples, hour by hour, the same every time for the same tag index."""
    rng = random.Random(1000 + index)
    base, sigma, drift, decimals = SIGNALS[index]
    dropout_at = rng.randrange(86400 - 60)
    for hour in range(HOURS):
        out = []
        hour_us = START_US + hour * CHUNK_SPAN_US
        for i in range(3600):
            second = hour * 3600 + i
            source = hour_us + i * 1_000_000 + rng.randrange(1000)
            server = source + rng.randrange(200, 4000)
            if dropout_at <= second % 86400 < dropout_at + 20:
                out.append(Sample(tag_id, source, server, None, 0x80000000, 0))
                continue
            value = base + drift * math.sin(second / 21600.0) + (rng.gauss(0.0, sigma) if sigma else 0.0)
            out.append(Sample(tag_id, source, server, round(value, decimals), 0, 0))
        yield out


def copy_rows(engine: Any, batch: list[Sample], table: str = "telemetry_sample") -> None:
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", batch)


ROLLUP = """INSERT INTO telemetry_rollup (tag_id, minute, min_value, max_value, mean_value, sample_count)
SELECT tag_id, source_us / 60000000, MIN(value), MAX(value), AVG(value), COUNT(*) FROM telemetry_sample
WHERE source_us >= :lo AND source_us < :hi AND status_code < 1073741824 AND value IS NOT NULL
GROUP BY tag_id, source_us / 60000000"""


def storage(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return {t: conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
                    for t in ("telemetry_sample", "telemetry_chunk", "telemetry_rollup", "audit_entry")}
        page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        used = conn.exec_driver_sql("PRAGMA page_count").scalar_one() - conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        return {"whole database file (used pages)": used * page}


def vacuum(engine: Any, table: str = "telemetry_sample") -> None:
    if engine.dialect.name == "postgresql":  # what autovacuum does between compactions: dead rows become reusable
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")


def baseline_bytes_per_sample(engine: Any, tag_ids: list[int]) -> float:
    """The first day of the same data as plain rows (the storage before chunks), in a table of its own."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TABLE baseline_rows (LIKE telemetry_sample INCLUDING ALL)")
        else:
            conn.exec_driver_sql("CREATE TABLE baseline_rows (tag_id INTEGER NOT NULL, source_us BIGINT NOT NULL, "
                                 "server_us BIGINT, value FLOAT, status_code BIGINT NOT NULL, time_source SMALLINT "
                                 "NOT NULL DEFAULT 0, PRIMARY KEY (tag_id, source_us)) WITHOUT ROWID")
    hours = min(HOURS, 24)
    generators = [signal_hours(i, t) for i, t in enumerate(tag_ids)]
    count = 0
    for _ in range(hours):
        batch = [s for g in generators for s in next(g)]
        copy_rows(engine, batch, "baseline_rows")
        count += len(batch)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.commit()
            vacuum(engine, "baseline_rows")
            size = conn.execute(text("SELECT pg_total_relation_size('baseline_rows')")).scalar_one()
        else:
            try:
                size = conn.exec_driver_sql("SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                                            "('baseline_rows', 'sqlite_autoindex_baseline_rows_1')").scalar_one()
            except Exception:  # dbstat not compiled in: measure the growth of the file instead
                size = None
            if size is None:
                raise SystemExit("SQLite without the dbstat table: cannot measure the baseline")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE baseline_rows")
    return size / count


def exact(rows: list[Sample]) -> list[tuple[Any, ...]]:
    return [(s.tag_id, s.source_us, s.server_us, None if s.value is None else struct.pack("<d", s.value),
             s.status_code, s.time_source) for s in rows]


def run(backend: str) -> bool:
    url, server = database(backend)
    try:
        tag_ids = make_tags(url, TAGS)
        engine = make_engine(url)
        with acting_as(Actor(None, "bench")), Session(engine) as sess:
            asset_id = sess.get(Tag, tag_ids[0]).asset_id
            sess.add(AssetUsage(asset_id=asset_id, record_type="batch_record", record_id="MSNK-BENCH",
                                started_at=from_us(START_US), ended_at=from_us(START_US + HOURS * CHUNK_SPAN_US),
                                started_by="bench"))
            sess.commit()
        baseline = baseline_bytes_per_sample(engine, tag_ids)
        generators = [signal_hours(i, t) for i, t in enumerate(tag_ids)]
        total = 0
        load_s = compact_s = 0.0
        chunks = 0
        for hour in range(HOURS):  # the collector writes an hour, the compaction job runs, autovacuum follows
            batch = [s for g in generators for s in next(g)]
            started = time.perf_counter()
            copy_rows(engine, batch)
            lo = START_US + hour * CHUNK_SPAN_US
            with engine.begin() as conn:
                conn.execute(text(ROLLUP), {"lo": lo, "hi": lo + CHUNK_SPAN_US})
            load_s += time.perf_counter() - started
            total += len(batch)
            started = time.perf_counter()
            result = run_compaction(lambda: Session(engine), now=from_us(lo + CHUNK_SPAN_US), max_chunks=10_000)
            assert not result.failures, result.failures
            chunks += result.chunks
            vacuum(engine)
            compact_s += time.perf_counter() - started
        vacuum(engine)
        at_end = storage(engine)  # the batch just ended: the recent window is still rows
        started = time.perf_counter()
        result = run_compaction(lambda: Session(engine), now=from_us(START_US + HOURS * CHUNK_SPAN_US)
                                + DEFAULT_RECENT_WINDOW, max_chunks=10_000)
        chunks += result.chunks
        vacuum(engine)
        compact_s += time.perf_counter() - started
        after = storage(engine)
        start, end = from_us(START_US), from_us(START_US + HOURS * CHUNK_SPAN_US)
        with Session(engine) as sess:
            chart_series(sess, tag_ids[0], start, end)  # warm the cache as a page would be
            timings = []
            for _ in range(5):
                t = time.perf_counter()
                points = chart_series(sess, tag_ids[0], start, end)
                timings.append(time.perf_counter() - t)
            chart_s = sorted(timings)[len(timings) // 2]
            t = time.perf_counter()
            raw = read_samples(sess, tag_ids[0], START_US, START_US + HOURS * CHUNK_SPAN_US)
            raw_s = time.perf_counter() - t
            t = time.perf_counter()
            verified = verify_telemetry(sess)
            verify_s = time.perf_counter() - t
        original = [s for hour in signal_hours(0, tag_ids[0]) for s in hour]
        identical = exact(raw) == exact(original)
        engine.dispose()
        size_end, size_after = sum(at_end.values()), sum(after.values())
        per_sample = size_after / total
        ok = (per_sample <= 12 and len(points) <= 2000 and chart_s <= 0.1 and raw_s / chart_s >= 50 and identical
              and verified.ok)
        print(f"{backend:<11} {DAYS:g} days x {TAGS} tags = {total:,} samples; loaded in {load_s:.0f} s, "
              f"compacted into {chunks:,} chunks in {compact_s:.0f} s ({total / compact_s:,.0f} samples/s)")
        print(f"            baseline rows: {baseline:.1f} B/sample (first day as plain rows, same run)")
        print(f"            at batch end (last {DEFAULT_RECENT_WINDOW} as rows): {size_end / 1e6:,.1f} MB "
              f"({size_end / total:.2f} B/sample)")
        print(f"            after compaction: {size_after / 1e6:,.1f} MB ({per_sample:.2f} B/sample, "
              f"{baseline / per_sample:.1f}x smaller than rows) = "
              + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in after.items()))
        print(f"            chart query {len(points)} points in {chart_s * 1000:.1f} ms; raw read of one tag "
              f"({len(raw):,} samples) {raw_s * 1000:,.0f} ms; ratio {raw_s / chart_s:,.0f}x; read-back "
              f"{'identical to the original' if identical else 'DIFFERS from the original'}; "
              f"verify-telemetry {'intact' if verified.ok else 'BROKEN'} ({verified.checked:,} chunks, "
              f"{verify_s:.1f} s)")
        print(f"            target <= 12 B/sample, <= 2,000 points, <= 100 ms, >= 50x, exact read-back: "
              f"{'met' if ok else 'NOT met'}")
        return ok
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    results = [run(name) for name in backends()]
    print("RESULT: target met" if all(results) else "RESULT: target NOT met (see the lines above)")
