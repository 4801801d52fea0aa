"""Serve the app on 127.0.0.1 over a fresh database holding a completed MsNK lot under QC: the floor
scenario's batch run through every step, in-process results taken from the record, some results entered
(one out of specification) and the rest pending, so the lot review page shows every kind of section.

python -m tests.batches.quality.serve_lot DATABASE_URL [--port P]
Prints one JSON line (users, password, lot id, port) when ready, then serves until killed."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.batches.execution.serve_scenario import serve_with


def build_lot(sess: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Run the scenario's first batch to completion and test its lot partly."""
    from app.audit import Actor, acting_as
    from sqlalchemy import select

    from app.users import User
    from batches.execution import operations as ops
    from batches.execution.models import Batch
    from batches.quality import operations as quality
    from batches.quality import results as res
    from batches.quality.specifications import install_seed_specifications
    from tests.batches.quality.conftest import at_planned_time, msnk_plan

    password = info["password"]
    with acting_as(Actor(None, "scenario")):
        install_seed_specifications(sess)
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
    with acting_as(Actor(analyst.id, analyst.username)):
        res.pull_in_process_results(sess, lot)
        for key, value in (("gram_stain", "negative"), ("endotoxin", "10"), ("potency", "12"),
                           ("residual_cd3", "1.0e6")):
            res.record_result(sess, lot, res.ResultInput(test_key=key, value=value))
    sess.flush()
    return {"lot_id": lot.id, "batch_id": batch.id, "qc_user": analyst.username}


def main() -> None:
    serve_with(build_lot, prefix="nkmes-browser-")


if __name__ == "__main__":
    main()
