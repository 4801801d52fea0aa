"""Fixtures for dosing tests: the shipped regimens, clinicians, a pharmacist, and released lots."""
from __future__ import annotations

from typing import Any

import pytest

from app.audit import Actor, acting_as
from batches.dosing.regimens import install_seed_regimens
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


@pytest.fixture()
def regimens(db_session: Any) -> dict[str, Any]:
    with acting_as(Actor(None, "test")):
        installed = install_seed_regimens(db_session)
    db_session.commit()
    return {r.protocol: r for r in installed}


@pytest.fixture()
def care(make_user: Any) -> dict[str, Any]:
    return {"clin1": make_user("clinician"), "clin2": make_user("clinician"), "pharm": make_user("pharmacist"),
            "qa": make_user("qa")}
