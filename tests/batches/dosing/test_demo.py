"""`flask demo-data` gives the demo clinician two pseudonymous patients with today's weight, once."""
from __future__ import annotations

from sqlalchemy import func, select

from app.users import User
from batches.dosing.availability import availability_for_patient
from batches.dosing.models import Patient, PatientWeight


def test_demo_data_registers_the_clinicians_patients_once(db_session, tmp_path):
    from app.cli import create_demo

    create_demo(db_session, tmp_path / "demo-passwords.txt")
    clinician = db_session.execute(select(User).where(User.username == "clinician")).scalar_one()
    patients = db_session.execute(select(Patient).order_by(Patient.study_id)).scalars().all()
    assert [(p.study_id, p.protocol, p.treating_clinician_id) for p in patients] == [
        ("CAR-001-0001", "NKG2D-CAR-NK", clinician.id), ("MSNK-001-0001", "MsNK", clinician.id)]
    answer = availability_for_patient(db_session, patients[1])  # today's weight is recent enough
    assert answer.weight_kg == 70.0 and answer.protocol == "MsNK" and len(answer.infusions) == 3

    create_demo(db_session, tmp_path / "demo-passwords.txt")
    assert db_session.execute(select(func.count()).select_from(Patient)).scalar_one() == 2
    assert db_session.execute(select(func.count()).select_from(PatientWeight)).scalar_one() == 2
