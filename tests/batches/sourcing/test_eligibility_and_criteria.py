"""Donor eligibility derived from the maternal markers; criteria evaluated against the version in force."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from batches.sourcing import operations
from batches.sourcing.models import MARKERS
from batches.sourcing.operations import DEFAULT_CRITERIA, determine_eligibility
from tests.batches.sourcing.conftest import sign_as

ALL_CLEAR = {key: "non_reactive" for key in MARKERS}
REQUIRED = DEFAULT_CRITERIA["required_markers"]


def test_all_non_reactive_is_eligible():
    result = determine_eligibility(ALL_CLEAR, REQUIRED)
    assert result.status == "eligible"


@pytest.mark.parametrize("marker", list(MARKERS))
def test_any_reactive_marker_makes_the_donor_ineligible(marker):
    result = determine_eligibility({**ALL_CLEAR, marker: "reactive"}, REQUIRED)
    assert result.status == "ineligible"
    assert result.reasons == (f"{MARKERS[marker]}: reactive",)


@pytest.mark.parametrize("marker", list(MARKERS))
def test_a_required_marker_not_done_leaves_eligibility_incomplete(marker):
    result = determine_eligibility({**ALL_CLEAR, marker: "not_done"}, REQUIRED)
    assert result.status == "incomplete"
    assert result.reasons == (f"{MARKERS[marker]}: required but not done",)


@pytest.mark.parametrize("marker", list(MARKERS))
def test_a_marker_the_criteria_do_not_require_may_be_not_done(marker):
    required = [m for m in REQUIRED if m != marker]
    assert determine_eligibility({**ALL_CLEAR, marker: "not_done"}, required).status == "eligible"


def test_reactive_outranks_missing_and_every_reason_is_listed():
    result = determine_eligibility({**ALL_CLEAR, "hbsag": "reactive", "cmv": "not_done"}, REQUIRED)
    assert result.status == "ineligible"
    assert set(result.reasons) == {"HBsAg: reactive", "CMV: required but not done"}


def test_eligibility_is_stored_with_its_reasons_and_cannot_be_typed_in(make_unit):
    unit = make_unit(marker_htlv="reactive", eligibility="eligible")
    assert unit.eligibility == "ineligible"
    assert unit.eligibility_reason_list == ["HTLV-I/II antibody: reactive"]


def test_each_criterion_is_listed_pass_or_fail(make_unit):
    unit = make_unit(tnc_cells="5e8", cd34_cells="4e6", viability_percent="60", shipper_temperature_c="-140",
                     seal_intact="no", data_logger_reviewed="yes")
    results = {r.criterion: r.passed for r in unit.criterion_results}
    assert results == {"tnc": False, "cd34": True, "viability": False, "shipper_temperature": False,
                       "required_markers": True, "data_logger": True, "seal": False}
    assert unit.criteria_passed is False
    tnc = next(r for r in unit.criterion_results if r.criterion == "tnc")
    assert tnc.actual == "5 x 10^8" and tnc.requirement == ">= 1 x 10^9"


def test_boundaries_pass(make_unit):
    unit = make_unit(tnc_cells="1e9", cd34_cells="2e6", viability_percent="70", shipper_temperature_c="-150")
    assert unit.criteria_passed


def test_units_are_evaluated_against_the_version_in_force_at_receipt(make_criteria, make_unit):
    old = make_criteria(approved_days_ago=30, min_tnc_cells=1e9)
    new = make_criteria(approved_days_ago=2, min_tnc_cells=2e9)
    before_change = make_unit(tnc_cells="1.5e9", received_at=(utcnow() - timedelta(days=5)).isoformat())
    after_change = make_unit(tnc_cells="1.5e9", received_at=(utcnow() - timedelta(hours=3)).isoformat())
    assert before_change.criteria_id == old.id and before_change.criteria_passed
    assert after_change.criteria_id == new.id and not after_change.criteria_passed


def test_a_draft_is_not_in_force_until_qa_approves_it(db_session, criteria, make_user):
    qa = make_user("qa")
    draft = operations.create_criteria_draft(db_session, {"min_tnc_cells": 3e9}, change_description="tighter TNC")
    assert draft.version == criteria.version + 1
    assert operations.criteria_in_force(db_session, utcnow()) == criteria
    operations.approve_criteria(db_session, draft, **sign_as(qa), comment="approved per change control")
    assert draft.status == "approved" and draft.approved_by == qa.username
    assert operations.criteria_in_force(db_session, utcnow()) == draft
    assert operations.criteria_in_force(db_session, utcnow() - timedelta(days=1)) == criteria
    with pytest.raises(Conflict, match="already approved"):
        operations.approve_criteria(db_session, draft, **sign_as(qa))


def test_defaults_are_proposed_for_a_new_version(db_session):
    draft = operations.create_criteria_draft(db_session, {})
    assert draft.min_tnc_cells == DEFAULT_CRITERIA["min_tnc_cells"]
    assert draft.max_shipper_temperature_c == -150
    assert draft.required_marker_list == list(MARKERS)


@pytest.mark.parametrize("values, field", [
    ({"min_viability_percent": 120}, "min_viability_percent"),
    ({"min_tnc_cells": 0}, "min_tnc_cells"),
    ({"max_shipper_temperature_c": 10}, "max_shipper_temperature_c"),
    ({"required_markers": ["hiv_ab", "ebola"]}, "required_markers"),
])
def test_bad_criteria_values_are_refused(db_session, values, field):
    with pytest.raises(ValidationFailed) as refused:
        operations.create_criteria_draft(db_session, values)
    assert field in refused.value.errors


def test_only_qa_approves_criteria(db_session, make_user):
    from app.errors import PermissionDenied

    operator = make_user("operator")
    draft = operations.create_criteria_draft(db_session, {})
    with pytest.raises(PermissionDenied):
        operations.approve_criteria(db_session, draft, **sign_as(operator))
    assert draft.status == "draft"
