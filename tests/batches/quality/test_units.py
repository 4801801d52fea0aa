"""Final product units: made by the fill step, with product identifiers, contents, expiry from the recipe's
shelf life, chain of identity both ways, quarantine until the lot's disposition allows their use."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.errors import Conflict, NotFound, ReasonRequired, ValidationFailed
from batches.execution import operations as exec_ops
from batches.quality import operations as ops
from batches.quality.models import FinalProductUnit
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import E, at_planned_time, record, sign, step_of


def test_the_fill_step_makes_quarantined_bags_with_identifiers_contents_and_expiry(db_session, completed_batch,
                                                                                 seed_specs):
    batch = completed_batch("MSNK")
    assert batch.status == "completed"
    units = ops.units_of_batch(db_session, batch.id)
    assert [u.division for u in units] == [1, 2, 3, 4]
    assert units[0].product_identifier == f"{batch.cord_blood_din}-{batch.lot_number}-D01"
    assert len({u.product_identifier for u in units}) == 4
    fill = step_of(batch, "formulation")
    for unit in units:
        assert unit.status == "quarantined" and not unit.issuable
        assert unit.viable_cells == pytest.approx(3.0e9)  # 1.2e10 formulated / 4 bags
        assert unit.volume_ml == 50.0
        assert unit.expires_at == fill.completed_at + timedelta(hours=72)  # MsNK shelf life in the recipe
        assert unit.storage_condition == "2-8 C, do not freeze"
        assert unit.cord_blood_unit_id == batch.cord_blood_unit_id and unit.cord_blood_din == batch.cord_blood_din
    lot = ops.lot_of_batch(db_session, batch)
    assert lot.status == "in_testing" and lot.specification.code == "SPEC-MSNK"


def test_car_nk_bags_take_the_car_nk_shelf_life_and_may_have_no_volume(db_session, completed_batch, seed_specs):
    batch = completed_batch("NKG2D-CAR-NK")
    units = ops.units_of_batch(db_session, batch.id)
    assert len(units) == 3 and units[0].volume_ml is None
    assert units[0].expires_at == step_of(batch, "formulation").completed_at + timedelta(hours=48)
    assert units[0].viable_cells == pytest.approx(1.0e10 / 3)


def test_a_fractional_bag_count_refuses_signing_the_fill_step(db_session, completed_batch, people, stock):
    batch = completed_batch("MSNK", stop_before="formulation")
    step = step_of(batch, "formulation")
    with at_planned_time(step):
        record(db_session, step, people["operator"], final_viable_cells="1e10", bag_count="2.5", bag_volume_ml="50",
               formulation_buffer_lot=E(value=stock["FORM-BUFFER"], quantity="50"))
        sign(db_session, step, people["operator"])
        with pytest.raises(ValidationFailed, match="whole number"):
            sign(db_session, step, people["operator2"], "verified")
    assert ops.units_of_batch(db_session, batch.id) == []


def test_chain_of_identity_both_ways(db_session, completed_batch, seed_specs):
    batch = completed_batch("MSNK")
    unit = ops.units_of_batch(db_session, batch.id)[2]
    chain = ops.chain_of_identity(db_session, unit)
    assert chain["batch"].id == batch.id and chain["cord_blood_unit"].din == batch.cord_blood_din
    assert [u.id for u in chain["sibling_units"]] == [u.id for u in ops.units_of_batch(db_session, batch.id)]
    assert ops.units_of_cord_blood_unit(db_session, batch.cord_blood_unit_id)[0].batch_id == batch.id


def test_a_bag_is_found_by_its_scanned_identifier(db_session, completed_batch, seed_specs):
    batch = completed_batch("MSNK")
    unit = ops.units_of_batch(db_session, batch.id)[1]
    assert ops.find_unit_by_scan(db_session, unit.product_identifier).id == unit.id
    assert ops.find_unit_by_scan(db_session, "=" + unit.product_identifier.lower() + " ").id == unit.id
    with pytest.raises(NotFound, match="No infusion bag"):
        ops.find_unit_by_scan(db_session, unit.product_identifier + "9")
    with pytest.raises(ValidationFailed):
        ops.find_unit_by_scan(db_session, "  ")


def test_quarantined_bags_cannot_be_issued_until_the_disposition_allows(db_session, completed_batch, seed_specs):
    batch = completed_batch("MSNK")
    lot = ops.lot_of_batch(db_session, batch)
    unit = ops.units_of_batch(db_session, batch.id)[0]
    with pytest.raises(Conflict, match="quarantine"):
        ops.check_unit_issuable(unit)
    ops.apply_lot_status(db_session, lot, "conditionally_released", "test")
    assert unit.status == "conditionally_available" and unit.issuable
    ops.check_unit_issuable(unit)
    ops.apply_lot_status(db_session, lot, "on_recall", "test")
    with pytest.raises(Conflict, match="recall"):
        ops.check_unit_issuable(unit)
    ops.apply_lot_status(db_session, lot, "rejected", "test")
    assert unit.status == "for_destruction"


def test_storage_location_is_recorded_and_moving_needs_a_reason(db_session, completed_batch, people, seed_specs):
    batch = completed_batch("MSNK")
    unit = ops.units_of_batch(db_session, batch.id)[0]
    with as_user(people["operator"]):
        ops.record_storage_location(db_session, unit, "FRIDGE-2 / shelf 1")
        with pytest.raises(ReasonRequired):
            ops.record_storage_location(db_session, unit, "FRIDGE-3")
        ops.record_storage_location(db_session, unit, "FRIDGE-3", "fridge 2 defrost")
        with pytest.raises(ValidationFailed):
            ops.record_storage_location(db_session, unit, "x" * 121, "too long")
    assert unit.storage_location == "FRIDGE-3"


def test_a_corrected_fill_replaces_the_bags_and_keeps_the_old_ones(db_session, completed_batch, people, seed_specs):
    batch = completed_batch("MSNK")
    fill = step_of(batch, "formulation")
    count_entry = exec_ops.current_entries(db_session, batch)["bag_count"]
    operator = people["operator"]
    with as_user(operator):
        exec_ops.correct_entry(db_session, count_entry, operator, E(value="3"), reason="one bag leaked at sealing",
                               expected_version=fill.row_version)
    sign(db_session, fill, operator)
    sign(db_session, fill, people["operator2"], "verified")
    live = ops.units_of_batch(db_session, batch.id)
    everything = ops.units_of_batch(db_session, batch.id, include_voided=True)
    assert [u.division for u in live] == [5, 6, 7]
    assert len(everything) == 7 and all(u.void_reason for u in everything if u.division <= 4)
    assert live[0].viable_cells == pytest.approx(4.0e9)


def test_no_lot_specification_without_an_approved_specification(db_session, completed_batch):
    batch = completed_batch("MSNK")
    lot = ops.lot_of_batch(db_session, batch)
    assert lot.specification_id is None and len(ops.units_of_batch(db_session, batch.id)) == 4
    with pytest.raises(Conflict, match="no approved specification"):
        ops.start_lot_testing(db_session, lot)


def test_bags_are_audited(db_session, completed_batch, seed_specs):
    from app.audit import history_for

    batch = completed_batch("MSNK")
    unit = db_session.execute(select(FinalProductUnit).where(FinalProductUnit.batch_id == batch.id)).scalars().first()
    db_session.commit()
    assert history_for(db_session, "final_product_unit", unit.id)
