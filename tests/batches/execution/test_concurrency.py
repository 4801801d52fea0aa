"""Two tablets on the same batch, each with its own database connection and transaction: the second
writer of a step loses at the database (optimistic lock on the row version) and gets a message to reload."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.cli import upgrade_database
from app.db import make_engine
from app.errors import Conflict
from app.users import User
from batches.execution import operations as ops
from batches.execution.models import BatchStep
from tests.batches.execution import scenario


@pytest.fixture()
def floor(backend, fresh_database_url):
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = make_engine(url)
    with Session(engine) as sess:
        info = scenario.build(sess, batches=1)
        sess.commit()
    yield engine, info
    engine.dispose()


def _user(sess: Session, username: str) -> User:
    return sess.query(User).filter_by(username=username).one()


def test_two_tablets_racing_for_the_same_step(floor):
    engine, info = floor
    step_id = info["batches"][0]["steps"][0]
    with Session(engine, expire_on_commit=False) as tablet_a, Session(engine, expire_on_commit=False) as tablet_b:
        opened = []
        for tablet, who in ((tablet_a, "operator0"), (tablet_b, "operator1")):
            step = tablet.get(BatchStep, step_id)  # the page is rendered, then the request ends its transaction
            _ = (step.batch.recipe, step.batch.steps, step.entries)
            opened.append((step, _user(tablet, info["users"][who])))
            tablet.commit()
        (step_a, user_a), (step_b, user_b) = opened
        seen_a, seen_b = step_a.row_version, step_b.row_version
        assert seen_a == seen_b  # both tablets opened the step before either saved
        with acting_as(Actor(user_a.id, user_a.username)):
            ops.record_entries(tablet_a, step_a, user_a, {"din_matches": ops.EntryInput(value="pass")},
                               expected_version=seen_a)
            tablet_a.commit()
        with acting_as(Actor(user_b.id, user_b.username)), pytest.raises(Conflict, match="Reload"):
            ops.record_entries(tablet_b, step_b, user_b, {"bag_intact": ops.EntryInput(value="intact")},
                               expected_version=seen_b)
        tablet_b.rollback()
    with Session(engine) as check:
        step = check.get(BatchStep, step_id)
        assert step.taken_by == info["users"]["operator0"]
        assert [e.entry_key for e in step.entries] == ["din_matches"]
