"""Whole batches run from start to completion through the tablet pages, and the pages' refusals."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import db
from app.db import utcnow
from batches.execution.models import Batch, BatchStep, Deviation
from tests.conftest import PASSWORD


AHEAD = "Whole batch run in one go for the test"  # every step after day 0 is ahead of its planned day


def step_by_key(batch_id: int, key: str) -> BatchStep:
    return next(s for s in db.session.get(Batch, batch_id).steps if s.step_key == key)


def post_entries(client, batch_id: int, step: BatchStep, values: dict[str, str], expect: int = 302):
    page = client.get(f"/batches/{batch_id}/steps/{step.id}")
    assert page.status_code == 200
    version = re.search(r'name="version" value="(\d+)"', page.get_data(as_text=True)).group(1)
    data = {"reason": AHEAD, **values, "version": version}
    response = client.post(f"/batches/{batch_id}/steps/{step.id}/entries", data=data)
    assert response.status_code == expect, response.get_data(as_text=True)[:3000]
    return response


def sign_step(client, batch_id: int, step_id: int, user, meaning: str, expect: int = 302):
    response = client.post(f"/batches/{batch_id}/steps/{step_id}/sign", data={
        "meaning": meaning, "sign_username": user.username, "sign_password": PASSWORD})
    assert response.status_code == expect, response.get_data(as_text=True)[:3000]
    return response


def run_steps(client, login, batch_id: int, plan: list[tuple[str, dict[str, str]]], operator, verifier) -> None:
    for key, values in plan:
        login(operator)
        step = step_by_key(batch_id, key)
        post_entries(client, batch_id, step, values)
        sign_step(client, batch_id, step.id, operator, "performed")
        step = step_by_key(batch_id, key)
        if step.requires_verification:
            assert step.status == "performed"
            login(verifier)
            sign_step(client, batch_id, step.id, verifier, "verified")
        assert step_by_key(batch_id, key).status == "complete", key


def start_through_page(client, login, supervisor, unit, recipe) -> int:
    login(supervisor)
    page = client.get("/batches/start")
    assert page.status_code == 200 and unit.din in page.get_data(as_text=True)
    response = client.post("/batches/start", data={"unit_id": unit.id, "recipe_id": recipe.id,
                                                   "sign_username": supervisor.username, "sign_password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(re.search(r"/batches/(\d+)", response.headers["Location"]).group(1))


def local(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_whole_msnk_batch_through_the_web_pages(client, login, people, seed_recipes, stock, make_accepted_unit,
                                                new_asset):
    unit = make_accepted_unit()
    cabinet, incubator, bioreactor = new_asset("biosafety_cabinet"), new_asset("co2_incubator"), new_asset("rocking_bioreactor")
    batch_id = start_through_page(client, login, people["supervisor"], unit, seed_recipes["MSNK"])
    lot = lambda code, qty: {code: stock[code.split("|")[0]]}  # noqa: E731
    plan = [
        ("thaw", {"din_matches": "pass", "thaw_cabinet": cabinet.code, "bag_intact": "intact"}),
        ("mnc_isolation", {"gradient_lot": stock["FICOLL"], "gradient_lot__quantity": "15",
                           "mnc_total_cells": "1.2x10^8", "mnc_viability": "92"}),
        ("seeding", {"expansion_kit_lot": stock["NK-EXP-KIT"], "expansion_kit_lot__quantity": "1",
                     "il2_lot": f"IL2|{stock['IL2']}", "il2_lot__quantity": "2", "il15_lot": stock["IL15"],
                     "il15_lot__quantity": "2", "seeded_cells": "5e7", "culture_incubator": incubator.code}),
        ("feed_day3", {"medium_lot_d3": stock["NK-MEDIUM"], "medium_lot_d3__quantity": "100", "vcd_d3": "5e5",
                       "viability_d3": "90", "total_cells_d3": "1.5E8"}),
        ("bioreactor_transfer", {"vcd_d7": "1e6", "viability_d7": "92", "total_cells_d7": "1e9",
                                 "bioreactor": bioreactor.code, "incubator_released": "released"}),
        ("feed_day11", {"medium_lot_d11": stock["NK-MEDIUM"], "medium_lot_d11__quantity": "500", "vcd_d11": "3e6",
                        "viability_d11": "93", "total_cells_d11": "5e9"}),
        ("harvest", {"total_cells_d14": "1.3x10^10", "viability_d14": "95", "purity_d14": "99",
                     "bioreactor_released": "released"}),
        ("mpb_start", {"mpb_lot": stock["MPB-SIA1"], "mpb_lot__quantity": "5", "mpb_concentration": "2.0",
                       "mpb_added_at": local(utcnow() - timedelta(hours=47, minutes=30))}),
        ("mpb_stop", {"mpb_removed_at": "now", "cd22_ligand_pct": "99.5", "viability_engineered": "90"}),
        ("formulation", {"formulation_buffer_lot": stock["FORM-BUFFER"], "formulation_buffer_lot__quantity": "100",
                         "final_viable_cells": "1.1e10", "bag_count": "4", "bag_volume_ml": "50"}),
    ]
    assert lot  # the plan uses plain lot numbers and one MATERIAL|LOT label scan
    run_steps(client, login, batch_id, plan, people["operator"], people["operator2"])
    batch = db.session.get(Batch, batch_id)
    assert batch.status == "completed" and batch.completed_at is not None
    login(people["supervisor"])
    page = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "1.24 x 10^10" in page and "124% of theoretical" in page  # 1.3e10 x 95 % against 1e10
    assert "polyline" in page and "Growth curve" in page and "Open exceptions" in page
    chart = page[page.index('<svg'):page.index('</svg>')]  # the growth chart, drawn inline
    assert "growth-chart" in chart and ">expected (recipe)<" in chart and ">actual total cells<" in chart
    assert chart.count("<polyline") == 2 and ">10^10<" in chart  # expected and actual, on a log axis
    assert client.post(f"/batches/{batch_id}/submit-review",
                       data={"version": batch.row_version}).status_code == 422  # unsigned: refused
    assert client.post(f"/batches/{batch_id}/submit-review", data={
        "version": batch.row_version, "sign_username": people["supervisor"].username,
        "sign_password": PASSWORD}).status_code == 302
    assert db.session.get(Batch, batch_id).status == "in_review"
    # The equipment was released by the recipe's release entries.
    from equipment.models import Asset

    assert db.session.get(Asset, incubator.id).status == "available"
    assert db.session.get(Asset, bioreactor.id).status == "available"


def test_whole_car_nk_batch_through_the_web_pages(client, login, people, seed_recipes, stock, make_accepted_unit,
                                                  new_asset):
    unit = make_accepted_unit()
    incubator = new_asset("co2_incubator")
    batch_id = start_through_page(client, login, people["supervisor"], unit, seed_recipes["NKG2D-CAR-NK"])
    plan = [
        ("thaw_seed", {"din_matches": "pass", "expansion_kit_lot": stock["NK-EXP-KIT"],
                       "expansion_kit_lot__quantity": "1", "seeded_cells": "5.0x10^7", "seed_viability": "92",
                       "culture_incubator": incubator.code}),
        ("transduction", {"cells_at_transduction": "1e8", "vector_lot": stock["NKG2D-CAR-VECTOR"],
                          "vector_lot__quantity": "2", "vector_titer": "2.5e8", "vector_volume_ml": "2",
                          "enhancer_lot": stock["TRANSDUCTION-ENHANCER"], "enhancer_lot__quantity": "1"}),
        ("car_check_day7", {"viability_d7": "90", "total_cells_d7": "8e8", "car_positive_pct": "45",
                            "vcn_sample_id": "VCN-2026-001"}),
        ("harvest", {"total_cells_d14": "1.2e10", "viability_d14": "92", "incubator_released": "released"}),
        ("formulation", {"formulation_buffer_lot": stock["FORM-BUFFER"], "formulation_buffer_lot__quantity": "80",
                         "final_viable_cells": "1.0e10", "bag_count": "3"}),
    ]
    run_steps(client, login, batch_id, plan, people["supervisor"], people["operator"])
    batch = db.session.get(Batch, batch_id)
    assert batch.status == "completed"
    from batches.execution.operations import current_entries

    entries = current_entries(db.session, batch)
    assert entries["moi"].value_number == pytest.approx(5.0) and entries["moi"].limit_class == "green"
    assert entries["fold_d7"].value_number == pytest.approx(16.0)
    page = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "NKG2D-CAR-VECTOR" in page and "VCN-2026-001" in page


def test_out_of_limit_entry_on_the_page_asks_for_confirmation_then_opens_a_deviation(client, login, people,
                                                                                      make_batch, new_asset):
    batch = make_batch("MSNK")
    login(people["operator"])
    step = step_by_key(batch.id, "thaw")
    cabinet = new_asset("biosafety_cabinet")
    response = post_entries(client, batch.id, step, {"din_matches": "fail", "thaw_cabinet": cabinet.code}, expect=422)
    text = response.get_data(as_text=True)
    assert "outside the hard limits" in text and 'name="din_matches__confirm"' in text
    assert db.session.query(Deviation).filter_by(batch_id=batch.id).count() == 0
    post_entries(client, batch.id, step, {"din_matches": "fail", "din_matches__confirm": "yes",
                                          "din_matches__comment": "Label smudged; DIN confirmed by bank"})
    deviation = db.session.query(Deviation).filter_by(batch_id=batch.id).one()
    assert deviation.automatic and "smudged" in deviation.description
    assert client.get(f"/deviations/{deviation.id}").status_code == 200


def test_stale_form_is_refused_with_a_message_to_reload(client, login, people, make_batch):
    batch = make_batch("MSNK")
    login(people["operator"])
    step = step_by_key(batch.id, "thaw")
    stale_version = step.row_version
    post_entries(client, batch.id, step, {"din_matches": "pass"})
    response = client.post(f"/batches/{batch.id}/steps/{step.id}/entries",
                           data={"bag_intact": "leak", "version": stale_version})
    assert response.status_code == 409 and "Reload the page" in response.get_data(as_text=True)
    assert "bag_intact" not in {e.entry_key for e in step_by_key(batch.id, "thaw").entries}


def test_pages_render_for_each_reader_and_forms_without_csrf_are_refused(client, login, people, make_batch):
    batch = make_batch("MSNK")
    for who in ("operator", "supervisor", "qa"):
        login(people[who])
        for url in ("/batches/", "/batches/?view=mine", "/batches/?view=all", f"/batches/{batch.id}",
                    f"/batches/{batch.id}/steps/{batch.steps[0].id}", "/recipes/", f"/recipes/{batch.recipe_id}",
                    "/materials/", "/deviations/", "/deviations/new"):
            assert client.get(url).status_code == 200, (who, url)
    login(people["operator"])
    response = client.post(f"/batches/{batch.id}/steps/{batch.steps[0].id}/entries",
                           data={"din_matches": "pass"}, csrf=False)
    assert response.status_code == 400
    assert client.get("/batches/start").status_code == 403
    assert client.get("/batches/99999").status_code == 404


def test_recipe_approval_through_the_pages(client, login, people):
    from batches.execution.models import Recipe
    from tests.batches.execution.test_recipes import MINIMAL

    login(people["supervisor"])
    response = client.post("/recipes/new", data={"definition": "code = ["})
    assert response.status_code == 422 and "not valid TOML" in response.get_data(as_text=True)
    response = client.post("/recipes/new", data={"definition": MINIMAL})
    assert response.status_code == 302
    recipe_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    assert client.post(f"/recipes/{recipe_id}/submit").status_code == 302
    login(people["qa"])
    assert "Approve this version" in client.get(f"/recipes/{recipe_id}").get_data(as_text=True)
    bad = client.post(f"/recipes/{recipe_id}/approve", data={"sign_username": people["qa"].username,
                                                              "sign_password": "wrong-password-1"})
    assert bad.status_code == 422 and db.session.get(Recipe, recipe_id).status == "in_review"
    good = client.post(f"/recipes/{recipe_id}/approve", data={"sign_username": people["qa"].username,
                                                               "sign_password": PASSWORD})
    assert good.status_code == 302 and db.session.get(Recipe, recipe_id).status == "approved"


def test_materials_and_deviation_pages(client, login, people, make_batch):
    batch = make_batch("MSNK")
    login(people["supervisor"])
    assert client.post("/materials/new", data={"code": "ACD-A", "name": "Anticoagulant", "unit": "mL"}).status_code == 302
    bad = client.post("/materials/lots/new", data={"material_code": "ACD-A", "lot_number": "L1",
                                                   "expiry_date": "tomorrow", "quantity": "10"})
    assert bad.status_code == 422
    ok = client.post("/materials/lots/new", data={"material_code": "ACD-A", "lot_number": "L1",
                                                  "expiry_date": "2030-01-01", "quantity": "10"})
    assert ok.status_code == 302
    assert "quarantined" in client.get("/materials/").get_data(as_text=True)
    login(people["operator"])
    refused = client.post("/deviations/new", data={"batch_id": batch.id, "title": "", "description": ""})
    assert refused.status_code == 422
    response = client.post("/deviations/new", data={"batch_id": batch.id, "title": "Door left open",
                                                    "description": "Cleanroom door open 5 min during seeding"})
    assert response.status_code == 302
    deviation = db.session.query(Deviation).filter_by(batch_id=batch.id).one()
    login(people["qa"])
    assert client.post(f"/deviations/{deviation.id}/close", data={
        "sign_username": people["qa"].username, "sign_password": PASSWORD}).status_code == 422
    assert client.post(f"/deviations/{deviation.id}/assess", data={
        "classification": "minor", "impact_assessment": "No product exposure: closed system"}).status_code == 302
    assert client.post(f"/deviations/{deviation.id}/close", data={
        "sign_username": people["qa"].username, "sign_password": PASSWORD}).status_code == 302
    assert db.session.get(Deviation, deviation.id).status == "closed"


def test_bad_input_on_the_pages_is_refused_in_words_and_saves_nothing(client, login, people, make_batch):
    from app.audit import AuditEntry
    from batches.execution.models import BatchException, Material, MaterialLot

    batch = make_batch("MSNK")
    login(people["supervisor"])
    assert client.get("/recipes/new?from=abc").status_code == 404
    long_material = client.post("/materials/new", data={"code": "X" * 41, "name": "n" * 201, "unit": "u" * 21})
    assert long_material.status_code == 422 and "At most 40 characters" in long_material.get_data(as_text=True)
    assert db.session.query(Material).filter(Material.name == "n" * 201).count() == 0
    assert client.post("/materials/new", data={"code": "ACD-A", "name": "Anticoagulant", "unit": "mL"}).status_code == 302
    long_lot = client.post("/materials/lots/new", data={"material_code": "ACD-A", "lot_number": "L" * 81,
                                                        "expiry_date": "2030-01-01", "quantity": "10",
                                                        "supplier": "s" * 201})
    assert long_lot.status_code == 422
    assert db.session.query(MaterialLot).filter(MaterialLot.lot_number == "L" * 81).count() == 0

    login(people["operator"])
    trail_before = db.session.query(AuditEntry).count()
    damaged = client.post("/deviations/new", data={"batch_id": "abc", "title": "Door open", "description": "5 min"})
    assert damaged.status_code == 422 and "Door open" in damaged.get_data(as_text=True)  # the form is shown again
    assert db.session.query(Deviation).count() == 0 and db.session.query(AuditEntry).count() == trail_before
    opened = client.post("/deviations/new", data={"batch_id": batch.id, "title": "Door open", "description": "5 min"})
    assert opened.status_code == 302
    assert db.session.query(BatchException).filter_by(batch_id=batch.id, kind="comment",
                                                      source_table="deviation").count() == 1
