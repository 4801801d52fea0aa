"""Fixtures for document tests: completed lots with passing results, released or not."""
from __future__ import annotations

from typing import Any

import pytest

from batches.quality import operations as ops
from batches.quality import review as rev
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import (  # noqa: F401  (fixtures re-exported for these tests)
    completed_batch,
    complete_lot_testing,
    criteria,
    intake_data,
    make_accepted_unit,
    make_asset,
    make_batch,
    make_criteria,
    make_tag,
    make_unit,
    new_asset,
    people,
    qa_users,
    receiver,
    record,
    seed_recipes,
    seed_specs,
    sign,
    step_of,
    stock,
)
from tests.conftest import PASSWORD


@pytest.fixture()
def qc(make_user):
    return {"analyst": make_user("qc_analyst"), "reviewer": make_user("qc_analyst")}


@pytest.fixture()
def ready_lot(db_session, completed_batch, seed_specs, qc):
    """make(code="MSNK", skip=()) -> a completed lot with passing, reviewed results (not yet released)."""

    def make(code: str = "MSNK", skip: tuple[str, ...] = (), **kw: Any):
        lot = ops.lot_of_batch(db_session, completed_batch(code, **kw))
        complete_lot_testing(db_session, lot, qc["analyst"], qc["reviewer"], skip=skip)
        return lot

    return make


def release(sess, lot, qa):
    with as_user(qa):
        return rev.release_lot(sess, lot, username=qa.username, password=PASSWORD, current_user=qa)


def conditionally_release(sess, lot, qa, pending=("sterility",)):
    with as_user(qa):
        return rev.conditionally_release_lot(sess, lot, pending_tests=list(pending),
                                             justification="fresh product; Gram stain and endotoxin pass",
                                             username=qa.username, password=PASSWORD, current_user=qa)
