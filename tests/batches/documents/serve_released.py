"""Serve the app on 127.0.0.1 over a fresh database holding a released MsNK lot with its bags: the floor
scenario's batch run through every step, every release test passing and reviewed, QA's release signed.

python -m tests.batches.documents.serve_released DATABASE_URL [--port P]
Prints one JSON line (users, password, lot id, bag id, cord blood unit id, port) when ready, then serves."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.batches.execution.serve_scenario import serve_with


def build_released_lot(sess: Any, info: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import select

    from app.audit import Actor, acting_as
    from app.users import User, create_user
    from batches.execution import operations as ops
    from batches.execution.models import Batch
    from batches.quality import operations as quality
    from batches.quality import review as rev
    from batches.quality.specifications import install_seed_specifications
    from tests.batches.quality.conftest import at_planned_time, complete_lot_testing, msnk_plan
    from tests.conftest import PASSWORD as TEST_PASSWORD  # the one complete_lot_testing signs with

    password = info["password"]
    with acting_as(Actor(None, "scenario")):
        install_seed_specifications(sess)
        reviewer = create_user(sess, username="label-qc2", full_name="Rita Reviewer", password=TEST_PASSWORD,
                               roles=["qc_analyst"])
        releaser = create_user(sess, username="label-qa2", full_name="Rhea Releaser", password=password, roles=["qa"])
    batch = sess.get(Batch, info["batches"][0]["batch_id"])
    first = info["batches"][0]
    assets = {k: SimpleNamespace(code=first[k]) for k in ("cabinet", "incubator", "bioreactor")}
    stock = {code: f"{code}-DEMO-01" for code in ("FICOLL", "NK-EXP-KIT", "IL2", "IL15", "NK-MEDIUM", "MPB-SIA1",
                                                  "FORM-BUFFER")}

    def user(name: str) -> Any:
        return sess.execute(select(User).where(User.username == info["users"][name])).scalar_one()

    operator, verifier, analyst = user("operator0"), user("operator1"), user("qc")
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
    complete_lot_testing(sess, lot, analyst, reviewer)
    with acting_as(Actor(releaser.id, releaser.username)):
        rev.release_lot(sess, lot, username=releaser.username, password=password, current_user=releaser)
    sess.flush()
    bag = quality.units_of_batch(sess, batch.id)[0]
    info["users"]["qa_releaser"] = releaser.username
    return {"lot_id": lot.id, "bag_id": bag.id, "bag_identifier": bag.product_identifier,
            "cbu_id": batch.cord_blood_unit_id}


def main() -> None:
    serve_with(build_released_lot, prefix="nkmes-browser-")


if __name__ == "__main__":
    main()
