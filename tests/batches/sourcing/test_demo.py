"""Demo data for `make run`: units in several states, created once."""
from __future__ import annotations

from sqlalchemy import func, select

from batches.sourcing import operations
from batches.sourcing.demo import DEMO_UNITS, create_demo_units
from batches.sourcing.models import CordBloodUnit


def test_demo_units_are_created_once(db_session, make_user):
    make_user("operator", username="operator")
    create_demo_units(db_session)
    create_demo_units(db_session)
    count = db_session.execute(select(func.count()).select_from(CordBloodUnit)).scalar_one()
    assert count == len(DEMO_UNITS)
    assignable = [u.din for u in operations.assignable_units(db_session)]
    assert assignable == [din for din, _, _, status in DEMO_UNITS if status == "accepted"]
