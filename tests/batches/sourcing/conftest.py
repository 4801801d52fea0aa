"""Factories for cord blood sourcing tests: approved criteria, valid intake data, units in each status."""
from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Callable

import pytest

from app.db import utcnow
from batches.sourcing import operations
from batches.sourcing.isbt128 import check_character
from batches.sourcing.models import CRITERIA_APPROVED, CbuAcceptanceCriteria, CordBloodUnit
from batches.sourcing.schemas import CordBloodUnitIntakeSchema
from tests.conftest import PASSWORD

_sequence = itertools.count(100001)


def new_din(facility: str = "G1234", year: str = "26") -> str:
    """A fresh 13-character DIN."""
    return f"{facility}{year}{next(_sequence):06d}"


def keyed(din: str) -> str:
    """The DIN as an operator types it from the eye-readable label."""
    return din + check_character(din)


def scanned(din: str, flags: str = "00") -> str:
    return f"={din}{flags}"


@pytest.fixture()
def make_criteria(db_session: Any) -> Callable[..., CbuAcceptanceCriteria]:
    """make_criteria(approved_days_ago=400, **values) -> an approved criteria version (committed)."""

    def make(approved_days_ago: float = 400, **values: Any) -> CbuAcceptanceCriteria:
        criteria = operations.create_criteria_draft(db_session, values)
        criteria.status = CRITERIA_APPROVED
        criteria.approved_at = utcnow() - timedelta(days=approved_days_ago)
        criteria.approved_by = "qa-fixture"
        db_session.commit()
        return criteria

    return make


@pytest.fixture()
def criteria(make_criteria: Callable[..., CbuAcceptanceCriteria]) -> CbuAcceptanceCriteria:
    return make_criteria()


_slot = itertools.count(1)


@pytest.fixture()
def intake_data() -> Callable[..., dict[str, Any]]:
    """intake_data(**overrides) -> a valid intake as typed on the form (strings), with a fresh DIN and slot."""

    def make(**overrides: Any) -> dict[str, Any]:
        today = utcnow().date()
        data = {
            "din": keyed(new_din()),
            "product_code": "S1362V00",
            "source_bank": "Madrid Cord Blood Bank",
            "collection_date": (today - timedelta(days=200)).isoformat(),
            "volume_ml": "25.0",
            "tnc_cells": "1.5x10^9",
            "cd34_cells": "4.2e6",
            "viability_percent": "92",
            "abo_rh": "O+",
            "hla_a": "A*02:01, A*24:02",
            "hla_b": "B*07:02, B*44:02",
            "hla_drb1": "DRB1*15:01, DRB1*04:01",
            "maternal_sample_date": (today - timedelta(days=199)).isoformat(),
            "shipper_temperature_c": "-180",
            "data_logger_reviewed": "yes",
            "seal_intact": "yes",
            "received_at": (utcnow() - timedelta(hours=1)).isoformat(),
            "storage_freezer": "LN2-01",
            "storage_rack": "1",
            "storage_box": "A",
            "storage_slot": str(next(_slot)),
        }
        data.update({f"marker_{key}": "non_reactive" for key in operations.MARKERS})
        data.update(overrides)
        return data

    return make


@pytest.fixture()
def receiver(make_user: Callable[..., Any]) -> Any:
    """The operator who physically receives units in these tests."""
    return make_user("operator")


@pytest.fixture()
def make_unit(db_session: Any, criteria: CbuAcceptanceCriteria, intake_data: Callable[..., dict[str, Any]],
              receiver: Any) -> Callable[..., CordBloodUnit]:
    """make_unit(**intake overrides) -> a received unit, committed."""

    def make(**overrides: Any) -> CordBloodUnit:
        overrides.setdefault("received_by", receiver.username)
        data = CordBloodUnitIntakeSchema().load(intake_data(**overrides))
        unit = operations.receive_unit(db_session, data)
        db_session.commit()
        return unit

    return make


@pytest.fixture()
def qa_users(make_user: Callable[..., Any]) -> tuple[Any, Any]:
    return make_user("qa"), make_user("qa")


def sign_as(user: Any) -> dict[str, Any]:
    return {"username": user.username, "password": PASSWORD, "current_user": user}


@pytest.fixture()
def make_accepted_unit(db_session: Any, make_unit: Callable[..., CordBloodUnit],
                       qa_users: tuple[Any, Any]) -> Callable[..., CordBloodUnit]:
    """make_accepted_unit(**overrides) -> a unit quarantined and accepted by QA, in storage."""

    def make(**overrides: Any) -> CordBloodUnit:
        unit = make_unit(**overrides)
        operations.change_status(db_session, unit, "quarantine", reason="received intact", **sign_as(qa_users[0]))
        operations.change_status(db_session, unit, "accepted", reason="meets criteria", **sign_as(qa_users[0]))
        db_session.commit()
        return unit

    return make
