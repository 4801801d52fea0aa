"""Serve the app on 127.0.0.1 over a fresh database holding a released MsNK lot (four bags), a patient of
the floor clinician, a second clinician who witnesses and a pharmacist, for the dosing path in the browser.

python -m tests.batches.dosing.serve_care DATABASE_URL [--port P]
Prints one JSON line (users, password, lot, bags, patient, port) when ready, then serves until killed."""
from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

from tests.batches.execution.serve_scenario import serve_with


def build_released_lot(sess: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Run the scenario's first batch through every step, enter and review passing QC results, release it."""
    from sqlalchemy import select

    from app.audit import Actor, acting_as
    from app.users import User, create_user
    from batches.execution import operations as ops
    from batches.execution.models import Batch
    from batches.quality import operations as quality
    from batches.quality import results as res
    from batches.quality import review as rev
    from batches.quality.specifications import install_seed_specifications
    from tests.batches.quality.conftest import PASSING, at_planned_time, msnk_plan

    password = info["password"]
    with acting_as(Actor(None, "scenario")):
        install_seed_specifications(sess)
        reviewer = create_user(sess, username="floor-qc2", full_name="Rory Reviewer", password=password,
                               roles=["qc_analyst"])
    batch = sess.get(Batch, info["batches"][0]["batch_id"])
    first = info["batches"][0]
    assets = {k: SimpleNamespace(code=first[k]) for k in ("cabinet", "incubator", "bioreactor")}
    stock = {code: f"{code}-DEMO-01" for code in ("FICOLL", "NK-EXP-KIT", "IL2", "IL15", "NK-MEDIUM", "MPB-SIA1",
                                                  "FORM-BUFFER")}

    def user(name: str) -> Any:
        return sess.execute(select(User).where(User.username == info["users"][name])).scalar_one()

    operator, verifier, analyst, qa = user("operator0"), user("operator1"), user("qc"), user("qa")
    for key, values in msnk_plan(stock, assets):
        step = next(s for s in batch.steps if s.step_key == key)
        inputs = {k: v if isinstance(v, ops.EntryInput) else ops.EntryInput(value=str(v)) for k, v in values.items()}
        with at_planned_time(step):
            with acting_as(Actor(operator.id, operator.username)):
                ops.record_entries(sess, step, operator, inputs, expected_version=step.row_version)
                ops.sign_step(sess, step, meaning="performed", username=operator.username, password=password,
                              current_user=operator)
            if step.requires_verification:
                with acting_as(Actor(verifier.id, verifier.username)):
                    ops.sign_step(sess, step, meaning="verified", username=verifier.username, password=password,
                                  current_user=verifier)
    lot = quality.lot_of_batch(sess, batch)
    with acting_as(Actor(analyst.id, analyst.username)):
        res.pull_in_process_results(sess, lot)
        for key, value in PASSING["MsNK"].items():
            res.record_result(sess, lot, res.ResultInput(test_key=key, value=value))
    with acting_as(Actor(reviewer.id, reviewer.username)):
        for result in res.results_of(sess, lot):
            if result.status == "recorded":
                res.review_result(sess, result, username=reviewer.username, password=password, current_user=reviewer)
    with acting_as(Actor(qa.id, qa.username)):
        rev.release_lot(sess, lot, username=qa.username, password=password, current_user=qa)
    sess.flush()
    units = quality.units_of_batch(sess, batch.id)
    return {"lot_id": lot.id, "lot_number": lot.lot_number, "batch_id": batch.id,
            "bags": [{"id": u.id, "identifier": u.product_identifier} for u in units]}


def add_care_people(sess: Any, info: dict[str, Any], patients: int = 1) -> dict[str, Any]:
    """A witnessing clinician, a pharmacist and patients of the floor clinician, each weighed today at the
    weight whose dose (shipped MsNK regimen, installed here) is one bag of the released lot."""
    from sqlalchemy import select

    from app.audit import Actor, acting_as
    from app.db import utcnow
    from app.users import User, create_user
    from batches.dosing.models import Patient, PatientWeight
    from batches.dosing.operations import current_regimen
    from batches.dosing.regimens import install_seed_regimens
    from batches.quality.models import FinalProductUnit

    password = info["password"]
    with acting_as(Actor(None, "scenario")):
        witness = create_user(sess, username="floor-witness", full_name="Wendy Witness", password=password,
                              roles=["clinician"])
        pharmacist = sess.execute(select(User).where(User.username == info["users"]["pharmacist"])).scalar_one()
        clinician = sess.execute(select(User).where(User.username == info["users"]["clinician"])).scalar_one()
        install_seed_regimens(sess)
        bag = sess.get(FinalProductUnit, info["bags"][0]["id"])
        weight_kg = round(bag.viable_cells / current_regimen(sess, "MsNK").dose_per_kg, 1)
        made = []
        for n in range(1, patients + 1):
            patient = Patient(study_id=f"MSNK-01-{n:03d}", hospital_id=f"H90000{n}", initials="JD",
                              date_of_birth=date(1968, 5, 17), treating_clinician_id=clinician.id, protocol="MsNK",
                              consent_date=date(2026, 11, 1), created_by="scenario")
            sess.add(patient)
            made.append(patient)
        sess.flush()
        for patient in made:
            sess.add(PatientWeight(patient_id=patient.id, weight_kg=weight_kg, measured_on=utcnow().date(),
                                   recorded_by="scenario"))
        sess.flush()
    return {"witness": witness.username, "pharmacist": pharmacist.username,
            "patients": [{"id": p.id, "study_id": p.study_id, "hospital_id": p.hospital_id} for p in made]}


def main() -> None:
    serve_with(build_released_lot, add_care_people, prefix="nkmes-care-")


if __name__ == "__main__":
    main()
