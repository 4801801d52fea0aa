"""Certificate of analysis: stored at release, deterministic, reissued with a reason when a result
changes, earlier versions kept."""
from __future__ import annotations

import io

from pypdf import PdfReader

from app.signatures import signatures_for
from batches.documents import coa
from batches.documents.store import document_versions, latest_document
from batches.quality import operations as ops
from batches.quality import results as res
from tests.batches.documents.conftest import conditionally_release, release
from tests.batches.execution.conftest import as_user


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


def test_release_stores_version_1_with_every_element(app, db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    assert latest_document(db_session, "coa", lot.lot_number) is None
    disposition = release(db_session, lot, people["qa"])
    [doc] = document_versions(db_session, "coa", lot.lot_number)
    assert (doc.version, doc.reason, doc.filename) == (1, None, f"CoA-{lot.lot_number}-v1.pdf")
    text = text_of(doc.content)
    [sig] = signatures_for(db_session, disposition)
    for expected in ("Certificate of analysis", lot.product, lot.lot_number, lot.batch.cord_blood_din, "Expiry",
                     "Purity, CD3-CD56+", "Flow cytometry (CD3/CD56)", "> 98", "Released",
                     sig.signature.signer_full_name, "meaning: released", "UTC"):
        assert expected in text, expected
    for bag in ops.units_of_batch(db_session, lot.batch_id):
        assert bag.product_identifier in text
    assert "pending" not in text


def test_the_same_data_gives_the_same_hash(app, db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    release(db_session, lot, people["qa"])
    stored = latest_document(db_session, "coa", lot.lot_number)
    again = coa.render_coa(coa.coa_data(db_session, lot), 1)
    assert again == stored.content
    assert coa.render_coa(coa.coa_data(db_session, lot), 2, "other") != stored.content


def test_a_later_result_reissues_the_certificate_and_keeps_the_first(app, db_session, ready_lot, people, qc):
    lot = ready_lot("MSNK", skip=("sterility",))
    conditionally_release(db_session, lot, people["qa"])
    first = latest_document(db_session, "coa", lot.lot_number)
    assert "pending (conditional release)" in text_of(first.content)
    assert "Conditionally released" in text_of(first.content)
    with as_user(qc["analyst"]):
        res.record_result(db_session, lot, res.ResultInput(test_key="sterility", value="no growth",
                                                           method="BacT/ALERT 14-day culture"))
    versions = document_versions(db_session, "coa", lot.lot_number)
    assert [d.version for d in versions] == [1, 2]
    assert versions[0].content == first.content
    assert "sterility" in versions[1].reason.lower() or "Sterility" in versions[1].reason
    text = text_of(versions[1].content)
    assert "no growth" in text and "reissued" in text


def test_the_certificate_has_the_same_hash_inside_and_outside_a_request(app, db_session, ready_lot, people,
                                                                         monkeypatch):
    import hashlib

    from flask import has_app_context

    lot = ready_lot("MSNK")
    release(db_session, lot, people["qa"])
    db_session.commit()  # a request context ends by removing the session: keep the release
    lot_id = lot.id
    monkeypatch.setitem(app.config, "SITE_TIMEZONE", "America/New_York")
    monkeypatch.setattr(coa, "_site_timezone", coa._site_timezone)  # restored after the test
    coa.configure(app.config["SITE_TIMEZONE"])
    with app.test_request_context("/"):
        inside = coa.render_coa(coa.coa_data(db_session, db_session.get(type(lot), lot_id)), 1)
    assert not has_app_context()
    lot = db_session.get(type(lot), lot_id)
    outside = coa.render_coa(coa.coa_data(db_session, lot), 1)
    assert text_of(inside) == text_of(outside)
    assert hashlib.sha256(inside).hexdigest() == hashlib.sha256(outside).hexdigest()
    text = text_of(outside)
    assert "(UTC-0500)" in text or "(UTC-0400)" in text  # the site zone, not UTC
