"""Shared set-up for the equipment benchmarks: a migrated database with one asset and N tags."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.orm import Session  # noqa: E402

from app.audit import Actor, acting_as  # noqa: E402
from app.cli import upgrade_database  # noqa: E402
from app.db import make_engine  # noqa: E402


def database(backend: str) -> tuple[str, object]:
    """A fresh migrated database: SQLite in a temporary file, or PostgreSQL started like the tests do."""
    server = None
    if backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='nkmes-bench-')}/bench.sqlite3"
    else:
        from tests.pg import PostgresServer

        server = PostgresServer().start()
        url = server.create_database("bench")
    upgrade_database(url)
    return url, server


def make_tags(url: str, count: int) -> list[int]:
    from equipment import operations as ops

    engine = make_engine(url)
    with acting_as(Actor(None, "bench")), Session(engine) as sess:
        asset = ops.create_asset(sess, code="BENCH-01", name="Bench", asset_type="rocking_bioreactor", location="B")
        ids = [ops.add_tag(sess, asset, node_id=f"ns=2;s=BENCH.T{i}", parameter=f"T{i}", unit="C",
                           low_limit=36.0, high_limit=38.0).id for i in range(count)]
        sess.commit()
    engine.dispose()
    return ids


def backends() -> list[str]:
    chosen = os.environ.get("BENCH_DB")
    return [chosen] if chosen else ["sqlite", "postgresql"]
