"""QA disposition: e-signed transitions with reasons, refusals, exceptional release with two QA signatures."""
from __future__ import annotations

import pytest

from app.errors import Conflict, PermissionDenied, ReasonRequired, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.sourcing import operations
from batches.sourcing.models import CbuExceptionalRelease, CordBloodUnit
from tests.batches.sourcing.conftest import sign_as


def test_received_to_quarantine_to_accepted_each_signed_with_the_reason(db_session, make_unit, qa_users):
    unit = make_unit()
    qa = qa_users[0]
    operations.change_status(db_session, unit, "quarantine", reason="in LN2 awaiting review", **sign_as(qa))
    operations.change_status(db_session, unit, "accepted", reason="records reviewed", **sign_as(qa))
    views = signatures_for(db_session, unit)
    assert [(v.signature.meaning, v.signature.comment, v.status) for v in views] == [
        ("quarantined", "in LN2 awaiting review", "valid"), ("accepted", "records reviewed", "valid")]
    assert all(v.signature.signer_full_name == qa.full_name for v in views)
    assert unit.status == "accepted"


def test_quarantine_to_rejected(db_session, make_unit, qa_users):
    unit = make_unit()
    operations.change_status(db_session, unit, "quarantine", reason="review", **sign_as(qa_users[0]))
    operations.change_status(db_session, unit, "rejected", reason="seal broken", **sign_as(qa_users[1]))
    assert unit.status == "rejected"
    assert signatures_for(db_session, unit)[-1].signature.meaning == "rejected"


@pytest.mark.parametrize("path, target", [
    ([], "accepted"),
    ([], "rejected"),
    (["quarantine"], "quarantine"),
    (["quarantine", "accepted"], "quarantine"),
    (["quarantine", "accepted"], "rejected"),
    (["quarantine", "rejected"], "accepted"),
])
def test_transitions_out_of_sequence_are_refused(db_session, make_unit, qa_users, path, target):
    unit = make_unit()
    for step in path:
        operations.change_status(db_session, unit, step, reason="step", **sign_as(qa_users[0]))
    signatures_before = len(signatures_for(db_session, unit))
    with pytest.raises(Conflict, match="cannot become"):
        operations.change_status(db_session, unit, target, reason="try", **sign_as(qa_users[1]))
    assert unit.status == (path[-1] if path else "received")
    assert len(signatures_for(db_session, unit)) == signatures_before


def test_a_transition_needs_a_reason(db_session, make_unit, qa_users):
    unit = make_unit()
    with pytest.raises(ReasonRequired):
        operations.change_status(db_session, unit, "quarantine", reason="  ", **sign_as(qa_users[0]))
    assert unit.status == "received"


def test_an_operator_cannot_change_status(db_session, make_unit, make_user):
    unit = make_unit()
    operator = make_user("operator")
    with pytest.raises(PermissionDenied):
        operations.change_status(db_session, unit, "quarantine", reason="x", **sign_as(operator))


def test_a_wrong_password_applies_nothing(db_session, make_unit, qa_users):
    unit = make_unit()
    qa = qa_users[0]
    with pytest.raises(SignatureRefused):
        operations.change_status(db_session, unit, "quarantine", reason="x", username=qa.username,
                                 password="wrong-password-here", current_user=qa)
    unit = db_session.get(CordBloodUnit, unit.id)
    assert unit.status == "received"
    assert signatures_for(db_session, unit) == []


@pytest.fixture()
def quarantined_ineligible(db_session, make_unit, qa_users):
    unit = make_unit(marker_hcv_nat="reactive")
    operations.change_status(db_session, unit, "quarantine", reason="review", **sign_as(qa_users[0]))
    db_session.commit()
    return unit


def test_an_ineligible_unit_cannot_be_accepted(db_session, quarantined_ineligible, qa_users):
    with pytest.raises(Conflict, match="ineligible.*HCV NAT: reactive.*exceptional release"):
        operations.change_status(db_session, quarantined_ineligible, "accepted", reason="ok", **sign_as(qa_users[0]))
    assert quarantined_ineligible.status == "quarantine"


def test_a_unit_outside_the_criteria_cannot_be_accepted(db_session, make_unit, qa_users):
    unit = make_unit(viability_percent="50")
    operations.change_status(db_session, unit, "quarantine", reason="review", **sign_as(qa_users[0]))
    with pytest.raises(Conflict, match="Viability: 50 %"):
        operations.change_status(db_session, unit, "accepted", reason="ok", **sign_as(qa_users[0]))


def test_exceptional_release_needs_justification_and_a_second_qa(db_session, quarantined_ineligible, qa_users):
    first, second = qa_users
    unit = quarantined_ineligible
    with pytest.raises(ValidationFailed, match="justification"):
        operations.request_exceptional_release(db_session, unit, justification="because", **sign_as(first))
    release = operations.request_exceptional_release(
        db_session, unit, justification="Only HLA-matched unit for this patient; physician informed consent.",
        **sign_as(first))
    assert [v.signature.meaning for v in signatures_for(db_session, release)] == ["approved"]
    with pytest.raises(Conflict, match="second, different QA"):
        operations.change_status(db_session, unit, "accepted", reason="release", **sign_as(first))
    assert unit.status == "quarantine" and unit.exceptional_release is False

    operations.change_status(db_session, unit, "accepted", reason="exceptional release", **sign_as(second))

    assert unit.status == "accepted"
    assert unit.exceptional_release is True
    assert release.status == "completed" and release.completed_by == second.username
    assert signatures_for(db_session, unit)[-1].signature.signer_username == second.username
    assert unit in operations.assignable_units(db_session)


def test_exceptional_release_is_only_for_units_that_need_it(db_session, make_unit, qa_users):
    unit = make_unit()
    operations.change_status(db_session, unit, "quarantine", reason="review", **sign_as(qa_users[0]))
    with pytest.raises(Conflict, match="accept it normally"):
        operations.request_exceptional_release(db_session, unit, justification="x" * 30, **sign_as(qa_users[0]))
    assert db_session.query(CbuExceptionalRelease).filter_by(unit_id=unit.id).count() == 0


def test_the_database_refuses_an_ineligible_accepted_unit_without_the_flag(db_session, quarantined_ineligible):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            db_session.execute(CordBloodUnit.__table__.update().where(CordBloodUnit.id == quarantined_ineligible.id)
                               .values(status="accepted"))
