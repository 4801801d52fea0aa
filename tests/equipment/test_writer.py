"""The telemetry writer never loses a batch: a batch that fails for a reason other than an unavailable
database goes to the spool and is written item by item; an item that can never be stored is set aside
in the spool's rejected table and recorded in the audit trail of its equipment, and the rest goes on."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.audit import Actor, AuditEntry, acting_as
from app.db import utcnow
from equipment import operations as ops
from equipment import signals
from equipment.models import Alarm, TelemetrySample
from equipment.opcua import writer as writer_module
from equipment.opcua.writer import REJECTED_ACTION, TelemetryWriter
from equipment.telemetry import GapEvent, SampleIn, rejected_telemetry_count, to_us

SECOND = 1_000_000
_counter = iter(range(1, 10_000))


@pytest.fixture()
def incubator(engine: Any, backend: str) -> dict[str, int]:
    """An incubator with a temperature tag that alarms at once above 38.0 C, committed."""
    with acting_as(Actor(None, "test")), Session(engine) as sess:
        asset = ops.create_asset(sess, code=f"INC-W{backend[:2].upper()}{next(_counter)}", name="writer test",
                                 asset_type="co2_incubator", location="B2")
        tag = ops.add_tag(sess, asset, node_id=f"ns=2;s={asset.code}.Temperature", parameter="Temperature",
                          unit="C", low_limit=36.0, high_limit=38.0)
        sess.commit()
        return {"asset": asset.id, "tag": tag.id}


@pytest.fixture()
def writer(telemetry_db: str, tmp_path: Path) -> Any:
    made = TelemetryWriter(telemetry_db, tmp_path / "spool.sqlite3", batch_size=64, lock_timeout_ms=500,
                           retry_interval=0.05)
    yield made
    made.stop()


def _stored(engine: Any, tag_id: int) -> list[float]:
    with Session(engine) as sess:
        return list(sess.execute(select(TelemetrySample.value).where(TelemetrySample.tag_id == tag_id)
                                 .order_by(TelemetrySample.source_us)).scalars())


def _samples(tag_id: int, values: list[float]) -> list[SampleIn]:
    start = to_us(utcnow()) - 60 * SECOND
    return [SampleIn(tag_id, start + i * SECOND, None, value, 0) for i, value in enumerate(values)]


def test_a_batch_failing_with_a_non_database_error_is_spooled_and_then_written(writer, engine, incubator):
    failures = []

    def fails_once(_asset: Any, alarm: Any) -> None:
        if not failures:
            failures.append(alarm.parameter)
            raise RuntimeError("a listener failed")

    values = [37.0, 37.1, 38.5, 38.6, 37.2]
    signals.alarm_raised.connect(fails_once)
    try:
        writer.handle(_samples(incubator["tag"], values))
    finally:
        signals.alarm_raised.disconnect(fails_once)
    assert failures == ["Temperature"]  # the batch did fail once
    assert _stored(engine, incubator["tag"]) == values
    assert len(writer.spool) == 0 and writer.spool.rejected_count() == 0 and writer.rejected == 0
    with Session(engine) as sess:
        alarms = sess.execute(select(Alarm).where(Alarm.tag_id == incubator["tag"])).scalars().all()
    assert [(a.limit_kind, a.peak_value) for a in alarms] == [("high", 38.6)]


def test_an_item_that_can_never_be_stored_is_set_aside_and_reported_and_the_rest_goes_on(writer, engine,
                                                                                         incubator):
    good = _samples(incubator["tag"], [37.0, 37.1, 37.2, 37.3, 37.4])
    poison = SampleIn(incubator["tag"], 2**70, None, 37.5, 0)  # a source time no column can hold
    writer.handle(good[:2] + [poison] + good[2:4])
    writer.handle(good[4:])  # and what comes after is written at once
    assert _stored(engine, incubator["tag"]) == [37.0, 37.1, 37.2, 37.3, 37.4]
    assert len(writer.spool) == 0 and writer.rejected == 1
    [kept] = writer.spool.rejected()
    assert kept.item == poison and kept.reported and kept.error
    with Session(engine) as sess:
        entries = sess.execute(select(AuditEntry).where(
            AuditEntry.action == REJECTED_ACTION, AuditEntry.record_id == str(incubator["asset"]))).scalars().all()
        assert rejected_telemetry_count(sess, incubator["asset"]) == 1
    assert [(e.table_name, e.actor_username) for e in entries] == [("equipment_asset", "collector")]
    changes = {key: new for key, _old, new in entries[0].change_list}
    assert changes["tag_id"] == str(incubator["tag"]) and changes["value"] == "37.5"
    assert "not a representable time" in changes["source_time"] and "rejected #" in changes["spool"]


def test_a_rejection_found_while_the_database_is_down_is_reported_when_it_is_back(writer, engine, incubator,
                                                                                  monkeypatch):
    refused = GapEvent(incubator["asset"], "no_such_cause", to_us(utcnow()), "refused by a check constraint")

    def database_down(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT INTO audit_entry", {}, Exception("server closed the connection"))

    monkeypatch.setattr(writer_module, "record_event", database_down)
    writer.handle([refused])
    [kept] = writer.spool.rejected()
    assert kept.item == refused and not kept.reported and "IntegrityError" in kept.error
    with Session(engine) as sess:
        assert rejected_telemetry_count(sess, incubator["asset"]) == 0
    monkeypatch.undo()
    time.sleep(writer.retry_interval * 2)
    writer.handle([])
    assert [r.reported for r in writer.spool.rejected()] == [True]
    with Session(engine) as sess:
        assert rejected_telemetry_count(sess, incubator["asset"]) == 1


def test_the_items_set_aside_are_listed_by_a_command(app, writer, incubator):
    writer.handle([SampleIn(incubator["tag"], 2**70, None, 37.5, 0)])
    result = app.test_cli_runner().invoke(args=["equipment", "rejected", "--spool", str(writer.spool.path)])
    assert result.exit_code == 0, result.output
    assert "0 item(s) waiting for the database, 1 refused for good" in result.output
    assert "source_us=1180591620717411303424" in result.output and "(in the audit trail)" in result.output
