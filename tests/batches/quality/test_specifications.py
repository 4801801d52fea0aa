"""Release specifications: the shipped data, versioning and QA approval by e-signature, immutability,
each result type and criterion, per-kg limits kept with the lot, and the version in force at testing start."""
from __future__ import annotations

import pytest

from app.audit import Actor, acting_as
from app.errors import Conflict, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.quality import operations as ops
from batches.quality import specifications as spec_ops
from batches.quality.specifications import FAIL, PASS, judge, find_test
from tests.batches.execution.conftest import as_user
from tests.conftest import PASSWORD


def _next_version_text(spec, **changes):
    text = spec_ops.specification_as_toml(spec)
    for old, new in changes.items():
        assert old.replace("_", " ") in text or old in text
        text = text.replace(old, new)
    return text


def test_shipped_specifications_cover_domain_table(seed_specs):
    msnk, car = seed_specs["MsNK"], seed_specs["NKG2D-CAR-NK"]
    assert msnk.status == car.status == "approved" and "sha256" in msnk.approval_note
    msnk_keys = {t["key"] for t in msnk.tests}
    car_keys = {t["key"] for t in car.tests}
    common = {"purity", "viability", "residual_cd3", "endotoxin", "gram_stain", "sterility", "mycoplasma", "potency",
              "identity"}
    assert common | {"cd22_ligand"} == msnk_keys
    assert common | {"car_positive", "vcn", "rcl"} == car_keys
    purity = find_test(msnk, "purity")
    assert (purity["operator"], purity["limit"], purity["unit"]) == (">", 98.0, "%")
    assert find_test(msnk, "cd22_ligand")["limit"] == 99.0 and find_test(msnk, "cd22_ligand")["in_process_entry"]
    assert find_test(car, "vcn")["operator"] == "<=" and find_test(car, "vcn")["limit"] == 5.0
    sterility = find_test(msnk, "sterility")
    assert sterility["gating"] == "may_be_pending" and sterility["accepted"] == ["no growth"]
    assert find_test(msnk, "gram_stain")["gating"] == "release"
    for test in msnk.tests + car.tests:
        assert test["method"] and test["sample_type"] and test["time_point"]


@pytest.mark.parametrize("key, number, text, expected", [
    ("purity", 98.5, None, PASS), ("purity", 98.0, None, FAIL),            # > 98 %
    ("viability", 70.0, None, PASS), ("viability", 69.9, None, FAIL),      # >= 70 %
    ("cd22_ligand", 99.01, None, PASS), ("cd22_ligand", 99.0, None, FAIL),
    ("sterility", None, "no growth", PASS), ("sterility", None, "growth", FAIL),
    ("mycoplasma", None, "Not detected", PASS), ("mycoplasma", None, "detected", FAIL),
    ("gram_stain", None, "negative", PASS), ("gram_stain", None, "positive", FAIL),
    ("identity", None, "pass", PASS), ("identity", None, "fail", FAIL),
    ("residual_cd3", 5.0e7, None, PASS),  # absolute count: the per-kg limit is judged at allocation
])
def test_each_result_type_and_criterion(seed_specs, key, number, text, expected):
    assert judge(find_test(seed_specs["MsNK"], key), number=number, text=text) == expected


def test_at_most_criterion_and_the_criterion_in_words(seed_specs):
    vcn = find_test(seed_specs["NKG2D-CAR-NK"], "vcn")
    assert judge(vcn, number=5.0) == PASS and judge(vcn, number=5.1) == FAIL
    assert spec_ops.criterion_text(vcn) == "<= 5 copies/cell"
    assert spec_ops.criterion_text(find_test(seed_specs["MsNK"], "residual_cd3")) == \
        "<= 2 x 10^5 cells/kg (checked at dose allocation)"
    assert spec_ops.criterion_text(find_test(seed_specs["MsNK"], "sterility")) == "no growth"


@pytest.mark.parametrize("broken, message", [
    ('result_type = "numeric"\nunit = "%"\n', "criterion"),
    ('result_type = "qualitative"\noptions = ["a", "b"]\naccepted = ["c"]\n', "accepted"),
    ('result_type = "numeric"\nunit = "%"\noperator = "=="\nlimit = 1.0\n', "operator"),
    ('result_type = "sometimes"\n', "result_type"),
])
def test_a_malformed_specification_is_refused_with_the_reason(db_session, broken, message):
    text = ('code = "SPEC-X"\nname = "X"\nproduct = "X"\n[[tests]]\nkey = "t"\nname = "T"\nmethod = "M"\n'
            'sample_type = "final product"\ntime_point = "final"\n' + broken)
    with pytest.raises(ValidationFailed, match=message):
        spec_ops.create_specification_draft(db_session, text)


def test_versioning_review_approval_and_supersession(db_session, seed_specs, people):
    v1 = seed_specs["MsNK"]
    author, approver = people["qa"], people["qa2"]
    with as_user(author):
        with pytest.raises(ValidationFailed, match="summary"):
            spec_ops.create_specification_draft(db_session, spec_ops.specification_as_toml(v1))
        v2 = spec_ops.create_specification_draft(db_session, _next_version_text(v1, **{"limit = 70.0": "limit = 75.0"}),
                                                 change_summary="viability limit raised to 75 %")
        assert (v2.version, v2.status) == (2, "draft")
        with pytest.raises(Conflict, match="still a draft"):
            spec_ops.create_specification_draft(db_session, spec_ops.specification_as_toml(v1), change_summary="x")
        spec_ops.submit_specification_for_review(db_session, v2)
        with pytest.raises(Conflict, match="cannot be changed"):
            spec_ops.update_specification_draft(db_session, v2, spec_ops.specification_as_toml(v1))
        with pytest.raises(Conflict, match="author"):
            spec_ops.approve_specification(db_session, v2, username=author.username, password=PASSWORD,
                                           current_user=author)
    db_session.commit()  # a refused signature rolls the unit of work back (and commits the failed attempt)
    with as_user(approver):
        with pytest.raises(SignatureRefused):
            spec_ops.approve_specification(db_session, v2, username=approver.username, password="wrong",
                                           current_user=approver)
        spec_ops.approve_specification(db_session, v2, username=approver.username, password=PASSWORD,
                                       current_user=approver)
    assert v2.status == "approved" and v1.status == "superseded" and v1.superseded_at is not None
    [sig] = signatures_for(db_session, v2)
    assert sig.signature.meaning == "approved" and sig.valid
    assert spec_ops.specification_in_force(db_session, "MsNK").id == v2.id
    assert find_test(v2, "viability")["limit"] == 75.0 and find_test(v1, "viability")["limit"] == 70.0


def test_an_approved_specification_is_immutable(db_session, seed_specs):
    spec = seed_specs["MsNK"]
    with pytest.raises(Conflict, match="cannot be changed"):
        spec_ops.update_specification_draft(db_session, spec, spec_ops.specification_as_toml(spec))
    with pytest.raises(Conflict):
        spec_ops.submit_specification_for_review(db_session, spec)


def test_a_signed_specification_cannot_be_changed_behind_its_signature(db_session, seed_specs, people):
    v1 = seed_specs["MsNK"]
    with as_user(people["qa"]):
        v2 = spec_ops.create_specification_draft(db_session, spec_ops.specification_as_toml(v1), change_summary="same")
        spec_ops.submit_specification_for_review(db_session, v2)
    with as_user(people["qa2"]):
        spec_ops.approve_specification(db_session, v2, username=people["qa2"].username, password=PASSWORD,
                                       current_user=people["qa2"])
    v2.definition = v2.definition.replace("98.0", "90.0")
    with pytest.raises(Exception, match="reason|signed"):
        db_session.flush()
    db_session.rollback()


def test_return_to_draft_needs_a_reason(db_session, seed_specs, people):
    with as_user(people["qa"]):
        v2 = spec_ops.create_specification_draft(db_session, spec_ops.specification_as_toml(seed_specs["MsNK"]),
                                                 change_summary="clarified methods")
        spec_ops.submit_specification_for_review(db_session, v2)
        with pytest.raises(ValidationFailed):
            spec_ops.return_specification_to_draft(db_session, v2, " ")
        spec_ops.return_specification_to_draft(db_session, v2, "method names to be aligned with the SOPs")
    assert v2.status == "draft"


def test_per_kg_limits_are_stored_with_the_lot(db_session, completed_batch, seed_specs):
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    limits = {item["test"]: item for item in lot.per_kg}
    assert limits["residual_cd3"]["limit"] == 2.0e5 and limits["residual_cd3"]["unit"] == "cells/kg"
    assert limits["endotoxin"]["limit"] == 5.0 and limits["endotoxin"]["unit"] == "EU/kg per dose"


def test_a_lot_is_judged_against_the_version_in_force_when_its_testing_started(db_session, completed_batch,
                                                                              seed_specs, people):
    v1 = seed_specs["MsNK"]
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    assert lot.specification_id == v1.id and lot.testing_started_at is not None
    with as_user(people["qa"]):
        text = spec_ops.specification_as_toml(v1).replace("per_kg_limit = 200000.0", "per_kg_limit = 100000.0")
        v2 = spec_ops.create_specification_draft(db_session, text, change_summary="CD3+ limit halved")
        spec_ops.submit_specification_for_review(db_session, v2)
    with as_user(people["qa2"]):
        spec_ops.approve_specification(db_session, v2, username=people["qa2"].username, password=PASSWORD,
                                       current_user=people["qa2"])
    assert ops.start_lot_testing(db_session, lot).specification_id == v1.id  # unchanged
    assert {i["test"]: i["limit"] for i in lot.per_kg}["residual_cd3"] == 2.0e5
    later = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    assert later.specification_id == v2.id
    assert {i["test"]: i["limit"] for i in later.per_kg}["residual_cd3"] == 1.0e5


def test_installing_the_seed_specifications_twice_changes_nothing(db_session, seed_specs):
    with acting_as(Actor(None, "test")):
        assert spec_ops.install_seed_specifications(db_session) == []
