"""Dose availability benchmark: availability for one patient (70 kg, NKG2D-CAR-NK, whole bags) with
2,000 lots and 20,000 bags in the database (half of them released), against a plain indexed query that
lists the released unreserved bags, measured in the same run; then the growth to 200,000 bags.
Target: availability p95 <= 50 ms and <= 5x the plain query's p95 (at 20,000 bags).

    .venv/bin/python bench/dose_availability.py            # both backends; BENCH_DB=sqlite for one
    BENCH_REQUESTS=20 .venv/bin/python bench/dose_availability.py
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _equipment_setup import backends, database  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "40"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "2000,20000,200000").split(",")]
BAGS_PER_LOT = 10
PROTOCOL = "NKG2D-CAR-NK"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def setup(url: str):  # type: ignore[no-untyped-def]
    from app import create_app, db
    from app.audit import Actor, acting_as
    from batches.dosing.regimens import install_seed_regimens
    from batches.quality.specifications import install_seed_specifications
    from config import TestConfig
    from tests.batches.execution import scenario

    config = TestConfig()
    config.DATABASE_URL = url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix="nkmes-bench-")
    app = create_app(config)
    with app.app_context():
        scenario.build(db.session, batches=1)
        with acting_as(Actor(None, "bench")):
            install_seed_specifications(db.session)
            install_seed_regimens(db.session)
        db.session.commit()
    return app


def grow_to(app, bags: int, state: dict) -> None:  # type: ignore[no-untyped-def]
    """Add lots of 10 bags each (half the lots released, one in ten of those conditionally) up to `bags`."""
    from app import db
    from app.db import utcnow
    from batches.execution.models import Batch
    from batches.quality.models import FinalProductUnit, QcResult, QualityLot, Specification

    rng = random.Random(len(state.get("done", ())) + 1)
    with app.app_context():
        sess = db.session
        template = sess.execute(select(Batch.__table__)).mappings().first()
        spec_id = sess.execute(select(Specification.id).where(Specification.product == PROTOCOL)).scalar()
        now = utcnow()
        start = state.get("lots", 0)
        lots = bags // BAGS_PER_LOT
        batch_rows, lot_rows, unit_rows, result_rows = [], [], [], []
        for n in range(start, lots):
            number = f"B-{n:06d}"
            batch_rows.append({**{k: v for k, v in template.items() if k != "id"}, "lot_number": number,
                               "product": PROTOCOL, "status": "released"})
        for chunk in range(0, len(batch_rows), 5000):
            sess.execute(insert(Batch.__table__), batch_rows[chunk:chunk + 5000])
        ids = dict(sess.execute(select(Batch.lot_number, Batch.id).where(Batch.lot_number.like("B-%"))).all())
        for n in range(start, lots):
            number = f"B-{n:06d}"
            released = n % 2 == 0
            status = ("conditionally_released" if n % 20 == 0 else "released") if released else "in_testing"
            lot_rows.append({"batch_id": ids[number], "lot_number": number, "product": PROTOCOL,
                             "specification_id": spec_id, "status": status, "created_at": now,
                             "per_kg_limits": '[{"test": "residual_cd3", "limit": 200000.0}, '
                                              '{"test": "endotoxin", "limit": 5.0}]'})
            per_bag = rng.uniform(0.6e9, 1.6e9)
            for d in range(1, BAGS_PER_LOT + 1):
                unit_rows.append({"product_identifier": f"{number}-{d:02d}", "batch_id": ids[number],
                                  "cord_blood_unit_id": template["cord_blood_unit_id"],
                                  "cord_blood_din": template["cord_blood_din"], "lot_number": number,
                                  "product": PROTOCOL, "division": d, "volume_ml": 50.0, "viable_cells": per_bag,
                                  "viable_cells_source": "bench", "filled_at": now, "filled_by": "bench",
                                  "expires_at": now + timedelta(hours=rng.uniform(12, 120)),
                                  "storage_condition": "2-8 C",
                                  "status": ("available" if status == "released" else "conditionally_available")
                                  if released else "quarantined"})
        for chunk in range(0, len(lot_rows), 5000):
            sess.execute(insert(QualityLot.__table__), lot_rows[chunk:chunk + 5000])
        for chunk in range(0, len(unit_rows), 5000):
            sess.execute(insert(FinalProductUnit.__table__), unit_rows[chunk:chunk + 5000])
        lot_ids = dict(sess.execute(select(QualityLot.lot_number, QualityLot.id)
                                    .where(QualityLot.lot_number.like("B-%"))).all())
        for n in range(start, lots, 2):
            for key, value in (("residual_cd3", rng.uniform(2e6, 1.2e7)), ("endotoxin", rng.uniform(20, 200))):
                result_rows.append({"lot_id": lot_ids[f"B-{n:06d}"], "specification_id": spec_id, "test_key": key,
                                    "test_name": key, "source": "entered", "method": "bench", "raw_value": str(value),
                                    "value_number": value, "value_text": str(value), "unit": None, "outcome": "pass",
                                    "recorded_at": now, "recorded_by": "bench", "reportable": True,
                                    "status": "reviewed"})
        for chunk in range(0, len(result_rows), 5000):
            sess.execute(insert(QcResult.__table__), result_rows[chunk:chunk + 5000])
        sess.commit()
        if "indexed" not in state:  # the plain query's index (status of a bag), as a listing of bags would have
            sess.execute(text("CREATE INDEX ix_bench_unit_status ON final_product_unit (status, expires_at)"))
            sess.commit()
            state["indexed"] = True
        if db.get_engine(app.config["DATABASE_URL"]).dialect.name == "postgresql":
            sess.execute(text("ANALYZE"))
            sess.commit()
    state["lots"] = lots


def measure(app) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    from app import db
    from app.db import utcnow
    from batches.dosing.availability import availability
    from batches.quality.models import FinalProductUnit as U

    with app.app_context():
        sess = db.session
        first = utcnow() + timedelta(hours=2)
        held: set[int] = set()

        def plain() -> list:
            rows = sess.execute(select(U.id, U.lot_number, U.viable_cells, U.expires_at).where(
                U.status.in_(("available", "conditionally_available")), U.voided_at.is_(None),
                U.expires_at > first)).all()
            return [r for r in rows if r.id not in held]

        def answer() -> object:
            return availability(sess, weight_kg=70, protocol=PROTOCOL, first_infusion_at=first,
                                dose_model="whole_bags", held_unit_ids=held)

        plain(), answer()  # warm up
        a_times, p_times = [], []
        result = None
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            result = answer()
            a_times.append((time.perf_counter() - t0) * 1000)
            sess.rollback()
            t0 = time.perf_counter()
            plain()
            p_times.append((time.perf_counter() - t0) * 1000)
            sess.rollback()
        db.session.remove()
    return p95(a_times), p95(p_times), result


def run(backend: str) -> bool:
    url, server = database(backend)
    try:
        app = setup(url)
        state: dict = {}
        met = True
        for size in SIZES:
            grow_to(app, size, state)
            a95, b95, result = measure(app)
            ratio = a95 / b95 if b95 else float("inf")
            options = [len(i.options) for i in result.infusions]
            line = (f"{backend:<11} {size:>7,} bags ({state['lots']:,} lots, half released): availability p95 "
                    f"{a95:.1f} ms, plain released-unreserved query p95 {b95:.1f} ms, ratio {ratio:.2f}; "
                    f"options per infusion {options}, plan {'complete' if result.available else 'incomplete'}")
            if size == 20000:
                ok = a95 <= 50 and ratio <= 5
                met = met and ok
                line += f" (target <= 50 ms and <= 5.00: {'met' if ok else 'NOT met'})"
            print(line, flush=True)
        return met
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    results = [run(name) for name in backends()]
    print("RESULT: target met" if all(results) else "RESULT: target NOT met (see the lines above)")
