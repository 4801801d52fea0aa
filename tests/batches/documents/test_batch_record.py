"""The executed batch record PDF: every 21 CFR 211.188 element of a completed and released MsNK lot in the
extracted text, corrections with the original value, each signature's manifestation (11.50), a record
changed after signing printed as such, the same bytes for the same data, and the page furniture."""
from __future__ import annotations

import hashlib
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import text

from app.signatures import signatures_for
from batches.documents.batch_record import build_batch_record, render_batch_record
from batches.execution import operations as exec_ops
from batches.quality import operations as qops
from batches.quality import review as rev
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import (  # noqa: F401  (fixtures)
    E,
    complete_lot_testing,
    completed_batch,
    criteria,
    intake_data,
    make_accepted_unit,
    make_asset,
    make_batch,
    make_criteria,
    make_tag,
    make_unit,
    new_asset,
    people,
    qa_users,
    receiver,
    record,
    seed_recipes,
    seed_specs,
    sign,
    step_of,
    stock,
)
from tests.conftest import PASSWORD


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture()
def qc(make_user):
    return {"analyst": make_user("qc_analyst"), "reviewer": make_user("qc_analyst")}


@pytest.fixture()
def released_lot(db_session, completed_batch, seed_specs, qc, people):
    """A completed MsNK batch with passing, reviewed results, released by QA."""
    lot = qops.lot_of_batch(db_session, completed_batch("MSNK"))
    complete_lot_testing(db_session, lot, qc["analyst"], qc["reviewer"])
    with as_user(people["qa"]):
        rev.release_lot(db_session, lot, username=people["qa"].username, password=PASSWORD,
                        current_user=people["qa"])
    db_session.commit()
    return lot


def test_a_released_lot_prints_every_211_188_element(db_session, released_lot, people, stock):
    batch = released_lot.batch
    pdf = render_batch_record(db_session, batch)
    assert pdf.startswith(b"%PDF")
    all_text = pdf_text(pdf)
    flat = " ".join(all_text.split())
    # cover: product, lot, recipe and version, DIN, dates, disposition and signer
    assert batch.lot_number in all_text and "MsNK" in all_text
    assert f"version {batch.recipe.version}" in flat and batch.recipe.name in flat
    assert batch.cord_blood_din in all_text
    assert "Started" in flat and "Completed" in flat
    assert "released" in flat and people["qa"].full_name in flat
    # every step, with entries: value, unit, limits and limit class, who and when
    for step in batch.steps:
        assert step.title in flat
    assert "1.3 x 10^10" in flat  # total cells on day 14 through the one number format
    assert "green" in flat and "Limits" in flat and people["operator"].username in flat
    # materials with lot, expiry and quantity
    for lot_number in stock.values():
        if lot_number.startswith(("FICOLL", "IL2", "NK-MEDIUM")):
            assert lot_number in all_text
    assert "Expiry" in flat and "Quantity" in flat
    # equipment with calibration status at use and occupancy times
    assert "current at use" in flat and "occupied by the batch" in flat
    # yield against theoretical, QC results against the specification, disposition
    assert "% of theoretical" in flat
    assert "Endotoxin" in flat and "pass" in flat and "Specification" in flat
    assert "Disposition" in flat and "Growth curve" in flat
    # signatures manifested (11.50): printed name, date and time with zone, meaning
    sig = signatures_for(db_session, batch.steps[0])[0].signature
    assert sig.signer_full_name in flat and "Performed by" in flat and "Verified by" in flat
    assert "Released by" in flat
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ \(UTC[+-]\d{4}\)", flat)
    # released: no marking; every page has lot, product, page x of y and the generation time
    texts = pages(pdf)
    assert "NOT RELEASED" not in all_text
    for number, page in enumerate(texts, start=1):
        assert f"Page {number} of {len(texts)}" in page and f"Lot {batch.lot_number}" in page
        assert "Product MsNK" in page and "generated" in page
    assert "SHA-256" in texts[-1] and "before this one" in " ".join(texts[-1].split())


def test_two_renders_of_the_same_data_are_the_same_bytes(db_session, released_lot):
    first = build_batch_record(db_session, released_lot.batch)
    second = build_batch_record(db_session, released_lot.batch)
    assert hashlib.sha256(first.pdf).hexdigest() == hashlib.sha256(second.pdf).hexdigest()
    assert f"SHA-256: {first.record_hash}" in pages(first.pdf)[-1]
    assert b"/CreationDate (D:" + first.generated_at.strftime("%Y%m%d%H%M%S").encode() in first.pdf


def test_a_correction_prints_the_original_struck_through_with_reason_who_and_when(
        db_session, completed_batch, people):
    batch = completed_batch("MSNK", stop_before="feed_day3")
    step = step_of(batch, "mnc_isolation")
    entry = exec_ops.current_entries(db_session, batch)["mnc_viability"]
    with as_user(people["operator"]):
        exec_ops.correct_entry(db_session, entry, people["operator"], exec_ops.EntryInput(value="88"),
                               reason="transcription error from the counter", expected_version=step.row_version)
    db_session.commit()
    pdf = render_batch_record(db_session, batch)
    flat = " ".join(pdf_text(pdf).split())
    assert "original 92" not in flat  # the plain text shows values; the strike is in the drawing
    assert "92" in flat and "88" in flat
    assert "transcription error from the counter" in flat and "corrected by" in flat
    streams = b"".join(page.get_contents().get_data() for page in PdfReader(io.BytesIO(pdf)).pages)
    # the original value is drawn with a line through it, the new one is not
    assert re.search(rb"m [\d.]+ [\d.]+ l S\s*BT[^\n]*\(92\) Tj", streams)
    assert not re.search(rb"m [\d.]+ [\d.]+ l S\s*BT[^\n]*\(88\) Tj", streams)
    assert "VOIDED" in flat  # the step's signatures voided by the correction are printed as voided
    assert "NOT RELEASED" in flat


def test_a_record_changed_after_signing_is_printed_as_such(db_session, released_lot):
    batch = released_lot.batch
    step = batch.steps[1]
    before = build_batch_record(db_session, batch).record_hash
    # a change outside the application (database edit): the signature no longer matches the record
    db_session.execute(text("UPDATE batch_step SET title = 'Edited afterwards' WHERE id = :id"), {"id": step.id})
    db_session.expire_all()
    flat = " ".join(pdf_text(render_batch_record(db_session, batch)).split())
    assert "Edited afterwards" in flat
    assert "RECORD CHANGED AFTER SIGNATURE" in flat
    assert build_batch_record(db_session, batch).record_hash != before  # the printed hash follows the content


def test_the_disposition_archives_the_signed_record_and_downloads_serve_it(db_session, released_lot, client, login,
                                                                             people, api_headers):
    from batches.documents.store import document_versions

    batch = released_lot.batch
    [archived] = document_versions(db_session, "batch_record", batch.lot_number)
    assert archived.sha256 == hashlib.sha256(archived.content).hexdigest()
    archived_text = " ".join(pdf_text(archived.content).split())
    assert "Released by" in archived_text and people["qa"].full_name in archived_text
    assert "NOT RELEASED" not in archived_text
    # a later database edit changes the live render, not what is served: the archived copy was signed
    db_session.execute(text("UPDATE batch_step SET title = 'Edited afterwards' WHERE id = :id"),
                       {"id": batch.steps[1].id})
    db_session.commit()
    db_session.expire_all()
    assert render_batch_record(db_session, batch) != archived.content
    login(people["qa"])
    for url in (f"/batches/{batch.id}/batch-record.pdf", f"/quality/lots/{released_lot.id}/batch-record.pdf"):
        page = client.get(url)
        assert page.status_code == 200 and page.mimetype == "application/pdf"
        assert page.data == archived.content
        assert f'filename="batch-record-{batch.lot_number}.pdf"' in page.headers["Content-Disposition"]
    api = client.get(f"/api/v1/lots/{released_lot.id}/batch-record", headers=api_headers(people["qa"]))
    assert api.status_code == 200 and api.mimetype == "application/pdf" and api.data == archived.content
    assert api.headers["X-Document-SHA256"] == archived.sha256


def test_before_disposition_the_live_record_is_served_marked_not_released(db_session, completed_batch, client,
                                                                          login, people, api_headers):
    batch = completed_batch("MSNK", stop_before="harvest")
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}")
    assert f"/batches/{batch.id}/batch-record.pdf" in page.get_data(as_text=True)
    download = client.get(f"/batches/{batch.id}/batch-record.pdf")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert download.data == render_batch_record(db_session, batch)
    assert all("NOT RELEASED" in p for p in pages(download.data))
    api = client.get(f"/api/v1/batches/{batch.id}/batch-record", headers=api_headers(people["operator"]))
    assert api.status_code == 200 and batch.lot_number in api.headers["Content-Disposition"]
    missing = client.get("/api/v1/batches/999999/batch-record", headers=api_headers(people["operator"]))
    assert missing.status_code == 404
    assert client.get("/batches/999999/batch-record.pdf").status_code == 404


def test_exceptions_deviations_and_oos_investigations_are_printed(db_session, completed_batch, seed_specs, qc,
                                                                   people):
    from batches.execution import deviations as deviation_ops
    from batches.execution.exceptions import exceptions_of, review_exceptions
    from batches.quality import results as res

    batch = completed_batch("MSNK")
    lot = qops.lot_of_batch(db_session, batch)
    with as_user(people["operator"]):
        deviation = deviation_ops.open_deviation_by_hand(
            db_session, title="Incubator door left ajar", description="Door found ajar for 2 minutes on day 5",
            batch=batch)
    with as_user(people["qa"]):
        review_exceptions(db_session, batch, [e.id for e in exceptions_of(db_session, batch)],
                          "door event assessed, no impact on the culture", username=people["qa"].username,
                          password=PASSWORD, current_user=people["qa"])
    with as_user(qc["analyst"]):
        res.record_result(db_session, lot, res.ResultInput(test_key="potency", value="12"))
    db_session.commit()
    [investigation] = res.investigations_of(db_session, lot)
    flat = " ".join(pdf_text(render_batch_record(db_session, batch)).split())
    assert deviation.number in flat and "Incubator door left ajar" in flat and "not classified" in flat
    assert "door event assessed, no impact on the culture" in flat and "Reviewed by" in flat
    assert investigation.number in flat and "Potency" in flat and "fail" in flat
    assert "No disposition yet" in flat and "NOT RELEASED" in flat
    # the sections keep the order of the record
    order = [flat.index(word) for word in ("Phase:", "Materials (genealogy)", "Equipment", "Growth curve",
                                           "Exceptions and review decisions", "Deviations",
                                           "QC results against the specification", "OOS investigations",
                                           "No disposition yet", "Record hash")]
    assert order == sorted(order)


def test_each_occupied_incubator_and_bioreactor_gets_its_telemetry_chart(db_session, completed_batch, make_tag):
    from datetime import timedelta

    from sqlalchemy import insert

    from app.audit import Actor, acting_as
    from batches.execution.exceptions import occupancies_of
    from equipment.models import Asset, TelemetryGap, TelemetryRollup

    batch = completed_batch("MSNK")
    occupied = occupancies_of(db_session, batch)
    assert {db_session.get(Asset, o.asset_id).asset_type for o in occupied} == {"co2_incubator", "rocking_bioreactor"}
    incubator = next(o for o in occupied if o.asset_code.startswith("INC"))
    asset = db_session.get(Asset, incubator.asset_id)
    tag = make_tag(asset, parameter="Temperature", low=36.0, high=38.0)
    m0 = int(incubator.started_at.timestamp() // 60)
    db_session.execute(insert(TelemetryRollup), [
        {"tag_id": tag.id, "minute": m0 + m, "min_value": 36.9, "max_value": 37.1, "mean_value": 37.0,
         "sample_count": 60} for m in range(0, 3 * 1440, 10)])
    with acting_as(Actor(None, "test")):
        db_session.add(TelemetryGap(asset_id=asset.id, tag_id=None, cause="connection_lost",
                                    started_at=incubator.started_at + timedelta(days=1),
                                    ended_at=incubator.started_at + timedelta(days=1, hours=2), detail="test gap"))
    db_session.commit()
    flat = " ".join(pdf_text(render_batch_record(db_session, batch)).split())
    assert f"Telemetry of {asset.code}" in flat and f"{asset.code} Temperature" in flat
    assert "high limit 38 C" in flat and "low limit 36 C" in flat and "monitoring gap (1 in this period)" in flat
    bioreactor = next(o for o in occupied if o.asset_code.startswith("BR"))
    assert f"Telemetry of {bioreactor.asset_code}" in flat and "No monitored parameter on record" in flat
