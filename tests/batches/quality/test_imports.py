"""Instrument CSV import: all rows or none, mismatches listed, the file kept with its SHA-256."""
from __future__ import annotations

import hashlib
import io

import pytest

from app import db
from app.errors import Conflict, ValidationFailed
from batches.quality import operations as ops
from batches.quality import results as res
from batches.quality.imports import import_instrument_file
from batches.quality.models import InstrumentFile
from tests.batches.execution.conftest import as_user


@pytest.fixture()
def car_lot(db_session, completed_batch, seed_specs):
    return ops.lot_of_batch(db_session, completed_batch("NKG2D-CAR-NK"))


def samples(sess, lot, analyst):
    with as_user(analyst):
        flow = res.draw_sample(sess, lot, test_keys=["purity", "residual_cd3"])
        lal = res.draw_sample(sess, lot, test_keys=["endotoxin"])
    return flow, lal


def test_flow_and_endotoxin_files_are_imported_and_kept(db_session, car_lot, make_user):
    analyst = make_user("qc_analyst")
    flow, lal = samples(db_session, car_lot, analyst)
    content = (f"sample_id,test,value,unit\n{flow.sample_identifier},purity,99.2,%\n"
               f"{flow.sample_identifier},residual_cd3,8.0E5,cells\n").encode()
    with as_user(analyst):
        kept, recorded = import_instrument_file(db_session, car_lot, kind="flow_cytometry", filename="facs.csv",
                                                data=content)
        lal_file, [endotoxin] = import_instrument_file(db_session, car_lot, kind="endotoxin", filename="lal.csv",
                                                       data=f"sample_id,value\n{lal.sample_identifier},6.5\n".encode())
    assert kept.sha256 == hashlib.sha256(content).hexdigest() and kept.content.startswith("sample_id")
    assert {r.test_key: r.value_number for r in recorded} == {"purity": 99.2, "residual_cd3": 8.0e5}
    assert all(r.source == "instrument_import" and r.source_file_id == kept.id for r in recorded)
    assert endotoxin.sample_id == lal.id and endotoxin.value_number == 6.5
    with as_user(analyst), pytest.raises(Conflict, match="already imported"):
        import_instrument_file(db_session, car_lot, kind="flow_cytometry", filename="again.csv", data=content)


def test_a_file_with_mismatches_imports_nothing_and_lists_them(db_session, car_lot, make_user):
    analyst = make_user("qc_analyst")
    flow, lal = samples(db_session, car_lot, analyst)
    content = (f"sample_id,test,value\n{flow.sample_identifier},purity,99.2\n"
               "UNKNOWN-S09,purity,98.9\n"
               f"{lal.sample_identifier},purity,99.0\n"
               f"{flow.sample_identifier},residual_cd3,1,5\n").encode()
    with as_user(analyst), pytest.raises(ValidationFailed, match="Nothing was imported: 3 row") as refused:
        import_instrument_file(db_session, car_lot, kind="flow_cytometry", filename="bad.csv", data=content)
    problems = refused.value.errors["_"]
    assert any("row 3" in p and "unknown sample" in p for p in problems)
    assert any("row 4" in p and "not drawn for this test" in p for p in problems)
    assert any("row 5" in p for p in problems)
    assert res.results_of(db_session, car_lot) == []
    assert db_session.query(InstrumentFile).count() == 0


def test_wrong_columns_and_unit_are_refused(db_session, car_lot, make_user):
    analyst = make_user("qc_analyst")
    flow, _ = samples(db_session, car_lot, analyst)
    with as_user(analyst):
        with pytest.raises(ValidationFailed, match="needs the columns"):
            import_instrument_file(db_session, car_lot, kind="flow_cytometry", filename="x.csv",
                                   data=b"id,result\n1,2\n")
        with pytest.raises(ValidationFailed) as refused:
            import_instrument_file(db_session, car_lot, kind="flow_cytometry", filename="x.csv",
                                   data=f"sample_id,test,value,unit\n{flow.sample_identifier},purity,99,EU\n".encode())
        assert "reported in %" in refused.value.errors["_"][0]
        with pytest.raises(ValidationFailed, match="not UTF-8"):
            import_instrument_file(db_session, car_lot, kind="endotoxin", filename="x.csv", data=b"\xff\xfe\x00")


def test_import_through_the_page(client, login, car_lot, make_user):
    analyst = make_user("qc_analyst")
    _, lal = samples(db.session, car_lot, analyst)
    db.session.commit()
    login(analyst)
    lot_id = car_lot.id
    bad = client.post(f"/quality/lots/{lot_id}/import", data={
        "kind": "endotoxin", "file": (io.BytesIO(b"sample_id,value\nNOPE,1\n"), "lal.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 422 and "unknown sample" in bad.get_data(as_text=True)
    good = client.post(f"/quality/lots/{lot_id}/import", data={
        "kind": "endotoxin", "file": (io.BytesIO(f"sample_id,value\n{lal.sample_identifier},4.2\n".encode()), "lal.csv")},
        content_type="multipart/form-data")
    assert good.status_code == 302
    assert [r.value_number for r in res.results_of(db.session, ops.get_lot(db.session, lot_id))] == [4.2]
