"""Dosing regimens are data, versioned and QA-approved with the lifecycle release specifications use."""
from __future__ import annotations

import pytest

from app.audit import Actor, acting_as
from app.errors import Conflict, ValidationFailed
from batches.dosing import regimens as reg
from batches.dosing.operations import current_regimen
from tests.conftest import PASSWORD


def test_shipped_regimens_are_approved_with_the_letters_figures(db_session, regimens):
    msnk = current_regimen(db_session, "MsNK")
    car = current_regimen(db_session, "NKG2D-CAR-NK")
    for r in (msnk, car):
        assert (r.dose_per_kg, r.infusions, r.interval_days, r.tolerance_minus_pct, r.tolerance_plus_pct) == \
            (3e7, 3, 1, 10, 10)
        assert r.status == "approved" and "sha256" in r.approval_note
    assert msnk.ligand_window_hours == 48 and "MPB-sia1" in msnk.ligand_window_source
    assert car.ligand_window_hours is None
    assert reg.install_seed_regimens(db_session) == []  # idempotent


def test_new_version_approved_by_another_qa_supersedes(db_session, regimens, care, make_user):
    author, approver = care["qa"], make_user("qa")
    data = dict(code="REG-MSNK", name="MsNK dosing regimen", protocol="MsNK", dose_per_kg=2e7, infusions=3,
                interval_days=1, tolerance_minus_pct=10, tolerance_plus_pct=10, max_cd3_per_kg=2e5,
                max_endotoxin_eu_per_kg=5, ligand_window_hours=36, ligand_window_source="stability study S-12")
    with acting_as(Actor(author.id, author.username)):
        draft = reg.create_regimen_draft(db_session, data, change_summary="lower dose")
        assert draft.version == 2
        reg.submit_regimen_for_review(db_session, draft)
        with pytest.raises(Conflict, match="author of a dosing regimen version cannot approve"):
            reg.approve_regimen(db_session, draft, username=author.username, password=PASSWORD, current_user=author)
    with acting_as(Actor(approver.id, approver.username)):
        reg.approve_regimen(db_session, draft, username=approver.username, password=PASSWORD, current_user=approver)
    assert current_regimen(db_session, "MsNK").version == 2
    assert regimens["MsNK"].status == "superseded"


def test_bad_regimen_refused_with_every_problem(db_session):
    with pytest.raises(ValidationFailed) as exc:
        reg.create_regimen_draft(db_session, dict(code="X", name="x", protocol="MsNK", dose_per_kg=0, infusions=0,
                                                  interval_days=1, tolerance_minus_pct=150, tolerance_plus_pct=10,
                                                  ligand_window_hours=48))
    text = str(exc.value)
    for part in ("dose_per_kg: must be positive", "infusions: at least 1", "tolerance_minus_pct: below 100",
                 "ligand_window_source"):
        assert part in text
