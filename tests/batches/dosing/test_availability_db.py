"""Availability read from the database: a released lot's bags, its QC totals and its end of MPB-sia1
engineering; held (reserved) bags are not offered."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.db import utcnow
from app.errors import ValidationFailed
from batches.dosing.availability import availability
from batches.quality import operations as qops
from batches.quality import review as rev
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import complete_lot_testing
from tests.conftest import PASSWORD


@pytest.fixture()
def released_msnk(db_session, completed_batch, seed_specs, make_user, people):
    analyst, reviewer = make_user("qc_analyst"), make_user("qc_analyst")
    lot = qops.lot_of_batch(db_session, completed_batch("MSNK"))
    complete_lot_testing(db_session, lot, analyst, reviewer)
    with as_user(people["qa"]):
        rev.release_lot(db_session, lot, username=people["qa"].username, password=PASSWORD,
                        current_user=people["qa"])
    db_session.commit()
    return lot


def test_released_lot_found_with_totals_and_ligand_window(db_session, regimens, released_msnk):
    units = qops.units_of_batch(db_session, released_msnk.batch_id)
    total = sum(u.viable_cells for u in units)
    weight = 10.0  # a small patient so one lot supplies several infusions
    answer = availability(db_session, weight_kg=weight, protocol="MsNK", first_infusion_at=utcnow() + timedelta(hours=1),
                          dose_model="drawn_volume")
    assert answer.lots_considered == 1
    first = answer.infusions[0]
    assert [o.lot_number for o in first.options] == [released_msnk.lot_number], first.refused
    option = first.options[0]
    assert option.delivered_cells == pytest.approx(3e8)
    # CD3+ per kg follows the lot's ratio: 1.0e6 CD3+ cells in the lot's viable cells
    assert option.cd3_per_kg == pytest.approx(1.0e6 * 3e8 / total / weight)
    # engineering ended about now: infusion 3, 49 h later, is outside the 48 h ligand window
    assert "outside the ligand window at infusion 3" in answer.infusions[2].refused[released_msnk.lot_number]
    held = {b["id"] for b in option.bags}
    again = availability(db_session, weight_kg=weight, protocol="MsNK", first_infusion_at=utcnow() + timedelta(hours=1),
                         dose_model="drawn_volume", held_unit_ids=held)
    for opt in again.infusions[0].options:
        assert not held & {b["id"] for b in opt.bags}


def test_no_approved_regimen_or_bad_weight_refused(db_session):
    with pytest.raises(ValidationFailed, match="No approved dosing regimen for MsNK"):
        availability(db_session, weight_kg=70, protocol="MsNK")
    with pytest.raises(ValidationFailed, match="outside 0.5 to 400 kg"):
        availability(db_session, weight_kg=0, protocol="MsNK")
