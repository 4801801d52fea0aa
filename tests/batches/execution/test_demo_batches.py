"""`flask demo-data` leaves a batch at day 7 and one awaiting QA, e-signed by the demo users, once."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.audit import AuditEntry
from app.db import utcnow
from app.users import User
from app.signatures import Signature, signatures_for
from batches.execution import operations as ops
from batches.execution.exceptions import exceptions_of
from batches.execution.models import Batch, StepEntry


def _counts(sess: Any) -> dict[str, int]:
    return {model.__name__: sess.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (Batch, StepEntry, Signature, AuditEntry)}


def _signers(sess: Any, record: Any) -> dict[str, str]:
    return {v.signature.meaning: v.signature.signer_username for v in signatures_for(sess, record)
            if v.status == "valid"}


def test_demo_data_makes_a_batch_at_day_7_and_one_in_qa_review_once(db_session, tmp_path):
    from app.cli import create_demo
    from batches.quality.operations import lot_of_batch
    from batches.quality.review import build_lot_review

    kept = tmp_path / "demo-passwords.txt"
    created = create_demo(db_session, kept)
    assert {u for u, _, _ in created} >= {"supervisor", "operator", "operator2", "qa"}
    batches = {b.status: b for b in db_session.execute(select(Batch).where(Batch.started_by == "supervisor")).scalars()}
    assert set(batches) == {"in_progress", "in_review"}
    now = utcnow()

    running = batches["in_progress"]
    assert timedelta(days=7) <= now - running.started_at < timedelta(days=7, hours=2)
    assert _signers(db_session, running) == {"started": "supervisor"}
    nxt = ops.next_step(running)
    assert nxt.step_key == "bioreactor_transfer" and not ops.is_early(nxt) and not ops.is_late(nxt)
    for step in running.steps:
        if step.planned_day < 7:
            assert step.status == "complete"
            expected = {"performed": "operator", **({"verified": "operator2"} if step.requires_verification else {})}
            assert _signers(db_session, step) == expected
            assert ops.planned_start(step) <= step.started_at <= ops.due_by(step)
        else:
            assert step.status == "pending" and _signers(db_session, step) == {}

    reviewed = batches["in_review"]
    assert all(s.status == "complete" for s in reviewed.steps)
    assert _signers(db_session, reviewed) == {"started": "supervisor", "submitted": "supervisor"}
    for step in reviewed.steps:
        assert _signers(db_session, step)["performed"] == "operator"
        assert ops.planned_start(step) <= step.started_at <= ops.due_by(step)
    for batch in (running, reviewed):
        # every step at its planned time: nothing early or late, nothing out of limits
        assert [(e.kind, e.description) for e in exceptions_of(db_session, batch)] == []
    lot = lot_of_batch(db_session, reviewed)
    assert lot is not None and build_lot_review(db_session, lot).batch.id == reviewed.id

    before = _counts(db_session)
    assert create_demo(db_session, kept) == []
    assert _counts(db_session) == before


def test_the_demo_batches_are_on_the_pages(db_session, client, login, tmp_path):
    from app.cli import create_demo
    from batches.quality.operations import lot_of_batch

    created = {u: p for u, p, _ in create_demo(db_session, tmp_path / "demo-passwords.txt")}
    running, reviewed = (db_session.execute(select(Batch).where(Batch.status == status)).scalar_one()
                         for status in ("in_progress", "in_review"))
    users = {u.username: u for u in db_session.execute(select(User)).scalars()}
    login(users["qa"], created["qa"])
    lot = lot_of_batch(db_session, reviewed)
    page = client.get(f"/quality/lots/{lot.id}/review")
    assert page.status_code == 200 and reviewed.lot_number in page.get_data(as_text=True)
    client.post("/logout")
    login(users["operator"], created["operator"])
    page = client.get(f"/batches/{running.id}")
    assert page.status_code == 200 and running.lot_number in page.get_data(as_text=True)
