"""Import of QC results from instrument export files (CSV): flow cytometry (purity, CD22-ligand and CAR+
percentages) and the endotoxin reader.

The file is kept whole with its SHA-256. Rows are matched to the lot's samples by identifier; every row is
checked first, and an unknown sample, a test the sample was not drawn for, a value that cannot be read or a
test that already has a result refuses the whole file with the list of rows: nothing is half-imported.
Columns: sample_id, value, and (flow cytometry) test; an optional unit column is checked against the
specification.
"""
from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import current_actor
from app.db import utcnow
from app.errors import Conflict, DomainError, ValidationFailed
from batches.quality.models import InstrumentFile, QualityLot
from batches.quality.results import ResultInput, _store_result, check_result_input, find_sample

KIND_TESTS = {"flow_cytometry": ("purity", "cd22_ligand", "car_positive", "viability", "residual_cd3"),
              "endotoxin": ("endotoxin",)}
MAX_BYTES = 2_000_000
MAX_ROWS = 2000


def import_instrument_file(sess: Session, lot: QualityLot, *, kind: str, filename: str, data: bytes
                           ) -> tuple[InstrumentFile, list[Any]]:
    """All rows or none; returns the kept file and the results recorded from it."""
    if kind not in KIND_TESTS:
        raise ValidationFailed("Choose the instrument: flow cytometry or endotoxin reader.",
                               errors={"kind": ["Choose."]})
    if not data:
        raise ValidationFailed("The file is empty.", errors={"file": ["Empty."]})
    if len(data) > MAX_BYTES:
        raise ValidationFailed("The file is larger than 2 MB.", errors={"file": ["Too large."]})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text (CSV).", errors={"file": ["Not text."]}) from None
    sha = hashlib.sha256(data).hexdigest()
    if sess.execute(select(InstrumentFile.id).where(InstrumentFile.lot_id == lot.id,
                                                    InstrumentFile.sha256 == sha)).first():
        raise Conflict(f"This file (SHA-256 {sha[:12]}…) was already imported for lot {lot.lot_number}.")
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower() for c in (reader.fieldnames or []) if c}
    needed = {"sample_id", "value"} | ({"test"} if kind == "flow_cytometry" else set())
    if not needed <= columns:
        raise ValidationFailed(f"The file needs the columns {', '.join(sorted(needed))}; it has "
                               f"{', '.join(sorted(columns)) or 'none'}.", errors={"file": ["Columns."]})
    problems: list[str] = []
    checked = []
    seen: set[str] = set()
    for number, raw in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise ValidationFailed(f"The file has more than {MAX_ROWS} rows.", errors={"file": ["Too many rows."]})
        if raw.get(None):  # type: ignore[call-overload]
            problems.append(f"row {number}: more fields than the header names (a decimal comma?).")
            continue
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str) or v is None}
        if not any(row.values()):
            continue
        test_key = row.get("test") or KIND_TESTS[kind][0]
        where = f"row {number} ({row.get('sample_id') or 'no sample'}, {test_key})"
        if test_key not in KIND_TESTS[kind]:
            problems.append(f"{where}: {test_key} is not a result of this instrument.")
            continue
        sample = find_sample(sess, row.get("sample_id", ""))
        if sample is None or sample.lot_id != lot.id:
            problems.append(f"{where}: unknown sample for lot {lot.lot_number}.")
            continue
        if sample.test_keys and test_key not in sample.test_keys:
            problems.append(f"{where}: sample {sample.sample_identifier} was not drawn for this test.")
            continue
        if test_key in seen:
            problems.append(f"{where}: the test appears twice in the file.")
            continue
        seen.add(test_key)
        data_in = ResultInput(test_key=test_key, value=row.get("value", ""), unit=row.get("unit") or None,
                              sample_identifier=sample.sample_identifier)
        try:
            checked.append((data_in, check_result_input(sess, lot, data_in)))
        except DomainError as exc:
            problems.append(f"{where}: {exc.message}")
    if problems:
        raise ValidationFailed(f"Nothing was imported: {len(problems)} row(s) do not match.",
                               errors={"_": problems})
    if not checked:
        raise ValidationFailed("The file has no result rows.", errors={"file": ["No rows."]})
    kept = InstrumentFile(lot_id=lot.id, kind=kind, filename=(filename or "upload.csv")[:200], sha256=sha,
                          content=text, row_count=len(checked), imported_at=utcnow(),
                          imported_by=current_actor().username)
    sess.add(kept)
    sess.flush()
    recorded = []
    for data_in, (test, number, shown, sample, investigation) in checked:
        recorded.append(_store_result(sess, lot, test, number, shown, data_in.value,
                                      method=f"instrument file {kept.filename}", sample=sample,
                                      investigation=investigation, source="instrument_import",
                                      source_file_id=kept.id))
    return kept, recorded
