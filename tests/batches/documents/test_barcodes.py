"""Barcodes scan back to exactly the value printed (Code 128 and DataMatrix)."""
from __future__ import annotations

import io

import pytest
from reportlab.pdfgen.canvas import Canvas

from batches.documents.barcodes import code128, draw_datamatrix
from tests.batches.documents.scan import scan_page


@pytest.mark.parametrize("value", [
    "G123498654321",          # 13 characters: stock C40 encoding appended a NUL
    "=G12349865432100",       # '=' (ISBT 128 data identifier): stock encoding did not decode at all
    "a:b;c<d>e?f@g",
    "G123498654321-NK-2026-001-D01",
    "W1234 26 000123",
    "A",
])
def test_both_barcodes_scan_back_to_the_value(value):
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(288, 288), invariant=1)
    draw_datamatrix(canvas, value, 20, 110, 100)
    code128(value, 260, 40).drawOn(canvas, 10, 20)
    canvas.showPage()
    canvas.save()
    assert scan_page(out.getvalue()) == {"Data Matrix": value, "Code 128": value}


def test_a_value_too_long_for_the_symbol_is_refused():
    canvas = Canvas(io.BytesIO(), pagesize=(288, 288))
    with pytest.raises(ValueError, match="Too much data"):
        draw_datamatrix(canvas, "x" * 145, 0, 0, 100)
