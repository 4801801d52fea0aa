"""Labels: barcodes scan back to the identifier, the text carries the fields, a bag of an unreleased lot
gets no label, and a reprint needs a reason and is audited."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.audit import AuditEntry
from app.errors import Conflict, ReasonRequired, ValidationFailed
from batches.documents import labels
from batches.documents.models import LabelPrint
from batches.quality import operations as ops
from batches.sourcing.isbt128 import check_character
from batches.sourcing.models import CordBloodUnit
from tests.batches.documents.conftest import conditionally_release, release
from tests.batches.documents.scan import scan_page


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def pages_of(pdf: bytes) -> list:
    return PdfReader(io.BytesIO(pdf)).pages


@pytest.mark.parametrize("size, inches", [("4x4", (4, 4)), ("2x1", (2, 1))])
def test_a_bag_label_of_a_released_lot_scans_back_and_shows_its_fields(app, db_session, ready_lot, people, size, inches):
    lot = ready_lot("MSNK")
    release(db_session, lot, people["qa"])
    bag = ops.units_of_batch(db_session, lot.batch_id)[0]
    with app.app_context():
        pdf, row = labels.print_bag_label(db_session, bag, size)
    [page] = pages_of(pdf)
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (inches[0] * 72, inches[1] * 72)
    assert scan_page(pdf, scale=8 if size == "2x1" else 4) == {"Code 128": bag.product_identifier,
                                                               "Data Matrix": bag.product_identifier}
    assert (row.reprint, row.page_size, row.identifier) == (False, size, bag.product_identifier)
    if size == "4x4":
        text = text_of(pdf)
        for expected in (bag.product, bag.lot_number, bag.product_identifier, "50 mL", "x 10^", "Expiry",
                         bag.storage_condition, "For allogeneic use only", check_character(bag.cord_blood_din)):
            assert expected in text
        assert "Conditionally released" not in text


def test_a_bag_of_an_unreleased_lot_gets_no_label(app, db_session, ready_lot):
    lot = ready_lot("MSNK")
    bag = ops.units_of_batch(db_session, lot.batch_id)[0]
    with app.app_context(), pytest.raises(Conflict, match="in testing"):
        labels.print_bag_label(db_session, bag)
    assert db_session.execute(select(LabelPrint)).scalars().all() == []


def test_a_conditionally_released_bag_says_so(app, db_session, ready_lot, people):
    lot = ready_lot("MSNK", skip=("sterility",))
    conditionally_release(db_session, lot, people["qa"])
    bag = ops.units_of_batch(db_session, lot.batch_id)[0]
    with app.app_context():
        pdf, _ = labels.print_bag_label(db_session, bag)
    assert "Conditionally released" in text_of(pdf)


def test_a_reprint_needs_a_reason_and_is_audited(app, db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    release(db_session, lot, people["qa"])
    bag = ops.units_of_batch(db_session, lot.batch_id)[0]
    with app.app_context():
        labels.print_bag_label(db_session, bag)
        db_session.commit()
        with pytest.raises(ReasonRequired, match="reprinted"):
            labels.print_bag_label(db_session, bag, reason="  ")
        with pytest.raises(ValidationFailed, match="label size"):
            labels.print_bag_label(db_session, bag, "9x9", reason="smudged")
        _, row = labels.print_bag_label(db_session, bag, reason="Label smudged by condensation")
        db_session.commit()
    assert (row.reprint, row.reprint_reason) == (True, "Label smudged by condensation")
    entries = db_session.execute(select(AuditEntry).where(AuditEntry.table_name == "label_print")
                                 .order_by(AuditEntry.id)).scalars().all()
    assert len(entries) == 2
    assert entries[1].reason == "Label smudged by condensation"
    assert db_session.query(LabelPrint).count() == 2


def test_cbu_and_sample_labels(app, db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    unit = db_session.get(CordBloodUnit, lot.batch.cord_blood_unit_id)
    with app.app_context():
        pdf, row = labels.print_cbu_label(db_session, unit)
    assert scan_page(pdf) == {"Code 128": unit.din, "Data Matrix": unit.din}
    text = text_of(pdf)
    assert check_character(unit.din) in text and unit.source_bank in text and "-150 C" in text
    assert "For further manufacturing use only" in text
    from batches.quality.results import draw_sample
    sample = draw_sample(db_session, lot, test_keys=["sterility"])
    with app.app_context():
        pdf, row = labels.print_sample_label(db_session, sample, "2x1")
    assert scan_page(pdf, scale=8) == {"Code 128": sample.sample_identifier, "Data Matrix": sample.sample_identifier}
    assert (row.label_kind, row.identifier) == ("sample", sample.sample_identifier)


def test_eligibility_statements():
    class U:
        eligibility = "ineligible"
    assert labels.BIOHAZARD in labels._eligibility_statements(U())
    assert labels.ADVISE_RISK in labels._eligibility_statements(U())
    U.eligibility = "incomplete"
    assert labels._eligibility_statements(U()) == [labels.NOT_EVALUATED]
    U.eligibility = "eligible"
    assert labels._eligibility_statements(U()) == []
