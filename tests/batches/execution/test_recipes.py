"""Master batch records: the file format, versions, QA approval and immutability."""
from __future__ import annotations

import pytest

from app.errors import Conflict, ReasonRequired, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.execution import recipes
from batches.execution.limits import AMBER, GREEN, NONE, RED, classify, evaluate, parse_number
from tests.batches.execution.conftest import as_user
from tests.conftest import PASSWORD

MINIMAL = """
code = "TEST-R"
name = "Test recipe"
product = "Test"
target_yield_cells = 1e10
yield_entry = "cells"

[[phases]]
key = "p1"
name = "Phase 1"

[[phases.steps]]
key = "s1"
title = "Count"
instructions = "Count the cells."
day = 0.0

[[phases.steps.entries]]
key = "cells"
label = "Cells"
type = "number"
unit = "cells"
hard_low = 1e6
"""


def approve(sess, recipe, author_user, qa_user):
    with as_user(author_user):
        recipes.submit_recipe_for_review(sess, recipe)
    with as_user(qa_user):
        return recipes.approve_recipe(sess, recipe, username=qa_user.username, password=PASSWORD,
                                      current_user=qa_user)


def test_seed_recipes_load_as_approved_with_the_domain_limits(seed_recipes):
    msnk, car = seed_recipes["MSNK"], seed_recipes["NKG2D-CAR-NK"]
    assert msnk.status == car.status == "approved" and msnk.version == 1
    specs = recipes.entry_specs(msnk)
    assert specs["mpb_concentration"]["hard_high"] == 2.0 and specs["mpb_concentration"]["unit"] == "mM"
    assert specs["mpb_exposure_hours"]["hard_high"] == 48.0
    assert specs["cd22_ligand_pct"]["type"] == "number"
    car_specs = recipes.entry_specs(car)
    assert {"vector_lot", "vector_titer", "moi", "car_positive_pct", "vcn_sample_id"} <= set(car_specs)
    assert "expression" in car_specs["moi"]
    assert "installed as approved" in msnk.approval_note.lower()


def test_recipe_version_lifecycle_and_immutability(db_session, make_user):
    author, qa1 = make_user("supervisor"), make_user("qa")
    with as_user(author):
        v1 = recipes.create_recipe_draft(db_session, MINIMAL, source_name="t.toml")
    with as_user(author):
        recipes.update_recipe_draft(db_session, v1, MINIMAL.replace('name = "Test recipe"', 'name = "Test recipe A"'))
    assert v1.name == "Test recipe A"
    approve(db_session, v1, author, qa1)
    db_session.commit()
    assert v1.status == "approved" and [s.status for s in signatures_for(db_session, v1)] == ["valid"]
    with pytest.raises(Conflict, match="cannot be changed"):
        recipes.update_recipe_draft(db_session, v1, MINIMAL)
    # The database side: a change to the signed definition of an approved version is refused without a reason.
    v1.definition = v1.definition.replace("Count the cells.", "Count them.")
    with pytest.raises(ReasonRequired):
        db_session.flush()
    db_session.rollback()
    assert "Count the cells." in db_session.get(type(v1), v1.id).definition

    with as_user(author):
        with pytest.raises(ValidationFailed, match="summary"):
            recipes.create_recipe_draft(db_session, MINIMAL)
        v2 = recipes.create_recipe_draft(db_session, MINIMAL.replace("1e6", "2e6"), change_summary="tighter limit")
        with pytest.raises(Conflict, match="still a draft"):
            recipes.create_recipe_draft(db_session, MINIMAL, change_summary="another")
    assert v2.version == 2 and v2.status == "draft"
    approve(db_session, v2, author, qa1)
    db_session.refresh(v1)
    assert v1.status == "superseded" and v2.status == "approved"
    assert recipes.entry_specs(v1)["cells"]["hard_low"] == 1e6  # the old version keeps its own content


def test_approval_needs_review_a_different_person_and_the_password(db_session, make_user):
    author, qa1 = make_user("qa"), make_user("qa")
    with as_user(author):
        recipe = recipes.create_recipe_draft(db_session, MINIMAL.replace("TEST-R", "TEST-S"))
        with pytest.raises(Conflict, match="in review"):
            recipes.approve_recipe(db_session, recipe, username=author.username, password=PASSWORD,
                                   current_user=author)
        recipes.submit_recipe_for_review(db_session, recipe)
        with pytest.raises(Conflict, match="author"):
            recipes.approve_recipe(db_session, recipe, username=author.username, password=PASSWORD,
                                   current_user=author)
    with as_user(qa1):
        with pytest.raises(SignatureRefused):
            recipes.approve_recipe(db_session, recipe, username=qa1.username, password="wrong-password-123",
                                   current_user=qa1)


@pytest.mark.parametrize("broken, message", [
    ("code = [", "not valid TOML"),
    (MINIMAL.replace('type = "number"', 'type = "colour"'), "type"),
    (MINIMAL.replace('hard_low = 1e6', 'hard_low = 1e6\nalert_low = 1e5'), "ordered"),
    (MINIMAL.replace('yield_entry = "cells"', 'yield_entry = "nothing"'), "yield_entry"),
    (MINIMAL + '\n[[phases.steps.entries]]\nkey = "fold"\nlabel = "Fold"\ntype = "calculation"\n'
               'expression = "cells / seeded"\n', "unknown entries"),
    (MINIMAL + '\n[[phases.steps.entries]]\nkey = "bad"\nlabel = "Bad"\ntype = "calculation"\n'
               'expression = "__import__(1)"\n', "only min"),
    (MINIMAL + '\n[[phases.steps.entries]]\nkey = "cells"\nlabel = "Again"\ntype = "text"\n', "used twice"),
])
def test_invalid_recipe_files_are_refused_with_the_reason(broken, message):
    with pytest.raises(ValidationFailed, match=message):
        recipes.parse_recipe_text(broken)


def test_recipe_round_trips_through_its_toml_form(seed_recipes):
    for recipe in seed_recipes.values():
        assert recipes.parse_recipe_text(recipes.recipe_as_toml(recipe)) == recipe.spec


def test_number_parsing_limit_classes_and_calculations():
    assert parse_number("1.2x10^10") == pytest.approx(1.2e10)
    assert parse_number("1.2E10") == parse_number("1.2e10") == pytest.approx(1.2e10)
    with pytest.raises(ValidationFailed, match="writes decimals with '.'"):
        parse_number("37,5", "Viability")  # read one way on the whole site (app.numbers), never guessed
    with pytest.raises(ValidationFailed, match="not a number"):
        parse_number("twelve")
    for huge in ("1x10^400", "1.2x10^99999999", "-1x10^400"):
        with pytest.raises(ValidationFailed, match="not a finite number"):
            parse_number(huge)
    assert parse_number("1x10^-400") == 0.0
    spec = {"hard_low": 70.0, "alert_low": 85.0, "hard_high": 100.0}
    assert [classify(v, spec) for v in (90, 80, 60, 101)] == [GREEN, AMBER, RED, RED]
    assert classify(5, {}) == NONE
    assert evaluate("a * b / 100", {"a": 2e9, "b": 90}) == pytest.approx(1.8e9)
    assert evaluate("a / b", {"a": 1}) is None and evaluate("a / b", {"a": 1, "b": 0}) is None
