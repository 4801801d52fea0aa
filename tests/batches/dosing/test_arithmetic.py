"""Dose arithmetic and the choice of lots and bags, on plain data (no database)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batches.dosing.availability import Bag, Lot, cells_needed, plan_availability
from batches.dosing.models import DosingRegimen

T0 = datetime(2026, 12, 10, 9, 0, tzinfo=timezone.utc)


def regimen(**kw: object) -> DosingRegimen:
    fields = dict(code="REG-T", version=1, name="t", protocol="NKG2D-CAR-NK", status="approved", dose_per_kg=3e7,
                  infusions=3, interval_days=1, tolerance_minus_pct=10, tolerance_plus_pct=10,
                  max_cd3_per_kg=2e5, max_endotoxin_eu_per_kg=5.0, ligand_window_hours=None)
    fields.update(kw)
    return DosingRegimen(**fields)


_ids = iter(range(1, 10_000))


def lot(number: str, bag_cells: list[float], *, status: str = "released", cd3: float = 1e6, eu: float = 10.0,
        expires: datetime | None = None, volume: float = 50.0, engineering_end: datetime | None = None) -> Lot:
    bags = [Bag(next(_ids), f"{number}-{i + 1:02d}", c, volume, expires or T0 + timedelta(days=10), "available")
            for i, c in enumerate(bag_cells)]
    return Lot(number, status, bags=bags, total_viable=sum(bag_cells), cd3_total=cd3, endotoxin_total=eu,
               engineering_end=engineering_end)


def test_70_kg_at_3e7_per_kg_needs_2_1e9_viable_cells() -> None:
    assert cells_needed(3e7, 70) == pytest.approx(2.1e9)
    answer = plan_availability([], regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert [i.cells_needed for i in answer.infusions] == [pytest.approx(2.1e9)] * 3
    assert [i.planned_at for i in answer.infusions] == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert answer.infusions[0].cells_low == pytest.approx(1.89e9)
    assert answer.infusions[0].cells_high == pytest.approx(2.31e9)
    assert not answer.available


def test_whole_bags_lot_fits_70_kg_but_not_40_kg_with_reason() -> None:
    lots = [lot("L1", [1.0e9] * 6)]
    heavy = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert heavy.available
    assert [len(p.bags) for p in heavy.plan] == [2, 2, 2]
    assert len({b["id"] for p in heavy.plan for b in p.bags}) == 6  # every infusion its own bags
    light = plan_availability(lots, regimen=regimen(), weight_kg=40, first_at=T0, dose_model="whole_bags")
    assert not light.available
    reason = light.infusions[0].refused["L1"]
    assert "no number of whole bags falls within -10% / +10% of 1.2 x 10^9 for 40 kg" in reason
    assert "1 x 10^9 below" in reason and "2 x 10^9 above" in reason
    # drawn volume: the same lot serves the light patient, the rest discarded
    drawn = plan_availability(lots, regimen=regimen(), weight_kg=40, first_at=T0, dose_model="drawn_volume")
    assert drawn.available
    first = drawn.plan[0]
    assert first.delivered_cells == pytest.approx(1.2e9)
    assert first.volume_ml == pytest.approx(60.0)  # one whole 50 mL bag + 10 mL of the next
    assert first.discarded_ml == pytest.approx(40.0)


def test_cd3_per_kg_checked_on_what_is_delivered_under_both_models() -> None:
    # 6.6e9 viable cells with 4.84e7 CD3+ cells: 2 bags (2.2e9) to 70 kg carry 2.3e5 CD3+/kg > 2e5
    lots = [lot("HIGH-CD3", [1.1e9] * 6, cd3=4.4e7 * 6.6 / 6)]
    whole = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert not whole.available
    assert "CD3+ per kg too high for this weight: 2.3 x 10^5 vs limit 2 x 10^5 cells/kg" in whole.infusions[0].refused["HIGH-CD3"]
    drawn = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="drawn_volume")
    assert "CD3+ per kg too high for this weight" in drawn.infusions[0].refused["HIGH-CD3"]
    # drawn volume: per kg follows the lot's ratio whatever the weight
    r_light = plan_availability(lots, regimen=regimen(max_cd3_per_kg=1e6), weight_kg=20, first_at=T0,
                                dose_model="drawn_volume").plan[0].cd3_per_kg
    r_heavy = plan_availability(lots, regimen=regimen(max_cd3_per_kg=1e6), weight_kg=60, first_at=T0,
                                dose_model="drawn_volume").plan[0].cd3_per_kg
    assert r_light == pytest.approx(r_heavy)


def test_endotoxin_per_kg_refused_with_figures() -> None:
    lots = [lot("HIGH-EU", [1.05e9] * 6, eu=3000.0)]  # 2.1e9 of 6.3e9 -> 1000 EU / 70 kg = 14.3 EU/kg
    answer = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert "endotoxin per kg too high for this weight: 14.3 vs limit 5 EU/kg" in answer.infusions[0].refused["HIGH-EU"]


def test_expiry_excludes_a_lot_for_infusion_3_but_not_1() -> None:
    lots = [lot("SHORT", [1.0e9] * 6, expires=T0 + timedelta(hours=30))]
    answer = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert answer.plan[0] is not None and answer.plan[1] is not None
    assert answer.plan[2] is None
    assert answer.infusions[2].refused["SHORT"].startswith("expires before infusion 3")
    assert "SHORT" not in answer.infusions[0].refused


def test_ligand_window_excludes_a_lot_for_infusion_3_but_not_1() -> None:
    lots = [lot("MS1", [1.0e9] * 6, engineering_end=T0 - timedelta(hours=10))]
    reg = regimen(protocol="MsNK", ligand_window_hours=48, ligand_window_source="site default")
    answer = plan_availability(lots, regimen=reg, weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert answer.plan[0] is not None and answer.plan[1] is not None
    assert answer.plan[2] is None
    assert answer.infusions[2].refused["MS1"] == ("outside the ligand window at infusion 3: 58 h after the end of "
                                                  "MPB-sia1 engineering vs at most 48 h")


def test_never_mixes_lots_within_an_infusion() -> None:
    # two lots of 1.5e9 each: together they would hold 2.1e9, but no single lot does
    lots = [lot("A", [0.75e9, 0.75e9]), lot("B", [0.75e9, 0.75e9])]
    answer = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert not answer.available
    assert "not enough cells for infusion 1: 1.5 x 10^9" in answer.infusions[0].refused["A"]
    drawn = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="drawn_volume")
    assert drawn.plan[0] is None
    ok = plan_availability(lots + [lot("C", [1.0e9] * 6)], regimen=regimen(), weight_kg=70, first_at=T0,
                           dose_model="whole_bags")
    for option in ok.plan:
        assert {b["product_identifier"].split("-")[0] for b in option.bags} == {"C"}


def test_unreleased_recalled_and_conditional_lots() -> None:
    lots = [lot("T", [1e9] * 6, status="in_testing"), lot("R", [1e9] * 6, status="on_recall"),
            lot("C", [1e9] * 6, status="conditionally_released")]
    answer = plan_availability(lots, regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert answer.infusions[0].refused["T"] == "not released: still in QC testing"
    assert answer.infusions[0].refused["R"] == "recalled"
    assert answer.available and all(p.conditional for p in answer.plan)


def test_reserved_bags_are_named() -> None:
    held = lot("H", [])
    held.held_bags = 4
    answer = plan_availability([held], regimen=regimen(), weight_kg=70, first_at=T0, dose_model="whole_bags")
    assert answer.infusions[0].refused["H"] == "reserved: all 4 usable bag(s) are reserved"
