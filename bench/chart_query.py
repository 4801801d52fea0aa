"""Chart benchmark: a 14-day batch of 10 tags at 1 Hz (about 12 million samples). The chart query for
one tag over the whole range (rollups, at most ~2,000 points) against reading that tag's raw samples,
in the same run. Targets: <= 2,000 points, <= 100 ms, >= 50 times faster than the raw read. Prints the
storage per batch. The data are generated with fast bulk inserts (rollups computed in SQL afterwards).

    .venv/bin/python bench/chart_query.py                  # full scale, both backends
    BENCH_DAYS=2 BENCH_DB=sqlite .venv/bin/python bench/chart_query.py   # a stated smaller scale
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

from _equipment_setup import backends, database, make_tags
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import make_engine
from equipment.telemetry import chart_series, from_us

DAYS = float(os.environ.get("BENCH_DAYS", "14"))
TAGS = 10
START_US = 1_800_000_000_000_000


def fill(engine, tag_ids: list[int]) -> int:
    seconds = int(DAYS * 86400)
    chunk = 20000
    total = 0
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        placeholder = "(%s, %s, %s, %s, 0)" if engine.dialect.name == "postgresql" else "(?, ?, ?, ?, 0)"
        sql = f"INSERT INTO telemetry_sample (tag_id, source_us, server_us, value, status_code) VALUES {placeholder}"
        for tag_id in tag_ids:
            for first in range(0, seconds, chunk):
                batch = [(tag_id, START_US + s * 1_000_000, START_US + s * 1_000_000,
                          37.0 + ((s * 7919 + tag_id) % 200 - 100) / 1000) for s in range(first, min(first + chunk, seconds))]
                if engine.dialect.name == "postgresql":  # COPY: the fastest bulk load PostgreSQL offers
                    with cursor.copy("COPY telemetry_sample (tag_id, source_us, server_us, value, status_code) "
                                     "FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row((*row, 0))
                else:
                    cursor.executemany(sql, batch)
                total += len(batch)
        conn.execute(text("""INSERT INTO telemetry_rollup (tag_id, minute, min_value, max_value, mean_value, sample_count)
            SELECT tag_id, source_us / 60000000, MIN(value), MAX(value), AVG(value), COUNT(*) FROM telemetry_sample
            WHERE source_us >= :lo GROUP BY tag_id, source_us / 60000000"""), {"lo": START_US})
    return total


def storage_bytes(engine, url: str) -> int:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.execute(text("SELECT pg_total_relation_size('telemetry_sample') + "
                                     "pg_total_relation_size('telemetry_rollup')")).scalar_one()
        conn.exec_driver_sql("COMMIT")
        conn.exec_driver_sql("VACUUM")
        return os.path.getsize(url.removeprefix("sqlite:///"))


def run(backend: str) -> None:
    url, server = database(backend)
    try:
        tag_ids = make_tags(url, TAGS)
        engine = make_engine(url)
        started = time.perf_counter()
        total = fill(engine, tag_ids)
        fill_s = time.perf_counter() - started
        if backend == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE telemetry_sample")
                conn.exec_driver_sql("VACUUM ANALYZE telemetry_rollup")
        size = storage_bytes(engine, url)
        start, end = from_us(START_US), from_us(START_US) + timedelta(days=DAYS)
        with Session(engine) as sess:
            chart_series(sess, tag_ids[0], start, end)  # warm the cache as a page would be
            timings = []
            for _ in range(5):
                t = time.perf_counter()
                points = chart_series(sess, tag_ids[0], start, end)
                timings.append(time.perf_counter() - t)
            chart_s = sorted(timings)[len(timings) // 2]
            t = time.perf_counter()
            raw = sess.execute(text("SELECT source_us, value FROM telemetry_sample WHERE tag_id = :t "
                                    "AND source_us >= :a AND source_us < :b ORDER BY source_us"),
                               {"t": tag_ids[0], "a": START_US, "b": START_US + int(DAYS * 86400e6)}).all()
            raw_s = time.perf_counter() - t
        engine.dispose()
        ok = len(points) <= 2000 and chart_s <= 0.1 and raw_s / chart_s >= 50
        print(f"{backend:<11} {DAYS:g} days x {TAGS} tags = {total:,} samples (filled in {fill_s:.0f} s); "
              f"storage {size / 1e6:,.0f} MB per batch ({size / total:.0f} B/sample)\n"
              f"            chart query {len(points)} points in {chart_s * 1000:.1f} ms; raw read of one tag "
              f"({len(raw):,} rows) {raw_s * 1000:,.0f} ms; ratio {raw_s / chart_s:,.0f}x "
              f"(target <= 2,000 points, <= 100 ms, >= 50x: {'met' if ok else 'NOT met'})")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    for name in backends():
        run(name)
