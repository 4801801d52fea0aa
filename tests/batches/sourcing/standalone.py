"""Set-up on a database of its own (not the rolled-back test transaction): for tests with several real
connections and for tests of the migrations."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.db import utcnow
from app.users import User, create_user
from batches.sourcing import operations
from batches.sourcing.models import CRITERIA_APPROVED, CordBloodUnit
from batches.sourcing.schemas import CordBloodUnitIntakeSchema
from tests.conftest import PASSWORD

RECEIVER = "store-op"
QA = "store-qa"


def seed(sess: Session) -> None:
    """An operator, a QA person and an approved criteria version (committed)."""
    with acting_as(Actor(None, "test")):
        create_user(sess, username=RECEIVER, full_name="Store Operator", password=PASSWORD, roles=["operator"])
        create_user(sess, username=QA, full_name="Store QA", password=PASSWORD, roles=["qa"])
        criteria = operations.create_criteria_draft(sess, {})
        criteria.status = CRITERIA_APPROVED
        criteria.approved_at = utcnow() - timedelta(days=30)
        criteria.approved_by = QA
        sess.commit()


def receive(sess: Session, intake_data: Callable[..., dict[str, Any]], **overrides: Any) -> CordBloodUnit:
    """A unit received by the operator (flushed, not committed)."""
    with acting_as(Actor(None, RECEIVER)):
        data = CordBloodUnitIntakeSchema().load(intake_data(received_by=RECEIVER, **overrides))
        return operations.receive_unit(sess, data)


def accept(sess: Session, unit: CordBloodUnit) -> None:
    """Quarantine and accept the unit with QA's e-signatures (flushed, not committed)."""
    qa = sess.query(User).filter_by(username=QA).one()
    with acting_as(Actor(qa.id, qa.username)):
        for to_status in ("quarantine", "accepted"):
            operations.change_status(sess, unit, to_status, reason="meets criteria", username=QA, password=PASSWORD,
                                     current_user=qa)
