"""Factories for batch execution tests: seed recipes, released material lots, equipment, started batches.

Cord blood units and equipment are made through their own packages' factories."""
from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Callable

import pytest

from app.audit import Actor, acting_as
from app.db import utcnow
from batches.execution import materials as material_ops
from batches.execution import operations as ops
from batches.execution.demo import DEMO_MATERIALS
from batches.execution.models import Batch, BatchStep, Recipe
from batches.execution.recipes import install_seed_recipes
from tests.batches.sourcing.conftest import (  # noqa: F401  (fixtures re-exported for these tests)
    criteria,
    intake_data,
    make_accepted_unit,
    make_criteria,
    make_unit,
    qa_users,
    receiver,
)
from tests.conftest import PASSWORD
from tests.equipment.conftest import make_asset, make_tag  # noqa: F401

_asset_numbers = itertools.count(1)


@pytest.fixture()
def seed_recipes(db_session: Any) -> dict[str, Recipe]:
    """The shipped MsNK and NKG2D-CAR-NK recipes, approved."""
    with acting_as(Actor(None, "test")):
        install_seed_recipes(db_session)
    db_session.commit()
    from sqlalchemy import select

    return {r.code: r for r in db_session.execute(select(Recipe).where(Recipe.status == "approved")).scalars()}


@pytest.fixture()
def stock(db_session: Any) -> dict[str, str]:
    """Every material of the seed recipes with one released, unexpired lot: code -> lot number."""
    lots = {}
    today = utcnow().date()
    for code, name, unit in DEMO_MATERIALS:
        from sqlalchemy import select

        from batches.execution.models import Material

        material = db_session.execute(select(Material).where(Material.code == code)).scalar_one_or_none()
        if material is None:
            material = material_ops.create_material(db_session, code=code, name=name, unit=unit)
        lot_number = f"{code}-T{next(_asset_numbers)}"
        material_ops.receive_lot(db_session, material, lot_number=lot_number, expiry_date=today + timedelta(days=200),
                                 quantity=10000, qc_status="released")
        lots[code] = lot_number
    db_session.commit()
    return lots


@pytest.fixture()
def new_asset(make_asset: Callable[..., Any]) -> Callable[..., Any]:
    """new_asset(asset_type="co2_incubator", **kw) -> a calibrated, available asset with a fresh code."""

    def make(asset_type: str = "co2_incubator", **kwargs: Any) -> Any:
        prefix = {"co2_incubator": "INC", "rocking_bioreactor": "BR", "biosafety_cabinet": "BSC"}.get(asset_type, "EQ")
        return make_asset(f"{prefix}-{next(_asset_numbers):04d}", asset_type=asset_type, **kwargs)

    return make


@pytest.fixture()
def people(make_user: Callable[..., Any]) -> dict[str, Any]:
    return {"operator": make_user("operator"), "operator2": make_user("operator"),
            "supervisor": make_user("supervisor", "operator"), "qa": make_user("qa"), "qa2": make_user("qa")}


@pytest.fixture()
def make_batch(db_session: Any, seed_recipes: dict[str, Recipe], make_accepted_unit: Callable[..., Any],
               people: dict[str, Any]) -> Callable[..., Batch]:
    """make_batch("MSNK" | "NKG2D-CAR-NK") -> a batch in progress, started by the supervisor (committed)."""

    def make(code: str = "MSNK", **unit_overrides: Any) -> Batch:
        unit = make_accepted_unit(**unit_overrides)
        with acting_as(Actor(people["supervisor"].id, people["supervisor"].username)):
            batch = ops.start_batch(db_session, unit_id=unit.id, recipe_id=seed_recipes[code].id,
                                    username=people["supervisor"].username, password=PASSWORD,
                                    current_user=people["supervisor"])
        db_session.commit()
        return batch

    return make


def step_of(batch: Batch, key: str) -> BatchStep:
    return next(s for s in batch.steps if s.step_key == key)


def record(sess: Any, step: BatchStep, user: Any, reason: str | None = None, **values: Any) -> list[Any]:
    """Record entries as `user`; a value may be a str or an EntryInput."""
    inputs = {k: v if isinstance(v, ops.EntryInput) else ops.EntryInput(value=str(v)) for k, v in values.items()}
    with acting_as(Actor(user.id, user.username)):
        return ops.record_entries(sess, step, user, inputs, expected_version=step.row_version, reason=reason)


def sign(sess: Any, step: BatchStep, user: Any, meaning: str = "performed") -> BatchStep:
    with acting_as(Actor(user.id, user.username)):
        return ops.sign_step(sess, step, meaning=meaning, username=user.username, password=PASSWORD,
                             current_user=user, expected_version=step.row_version)


def as_user(user: Any) -> Any:
    return acting_as(Actor(user.id, user.username))
