"""The bag page shows the bag's place in the dosing path (held for, issued to, infused in a patient) as
the viewer may see it, through the provider dosing registers with quality; quality imports no dosing."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.batches.dosing.care_support import *  # noqa: F401,F403  (fixtures)
from tests.batches.dosing.care_support import bags, infuse, issue, reserve, scan


def line_of(client, unit_id):
    page = client.get(f"/quality/units/{unit_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    start = text.find('class="dosing-state"')
    return text[start:text.find("</li>", start)] if start >= 0 else ""


def test_bag_page_shows_held_issued_infused_as_the_viewer_may_see_it(app, client, login, db_session, released_lot,
                                                                      clinicians, make_patient):
    lot = released_lot()
    unit = bags(db_session, lot)[0]
    unit_id, identifier = unit.id, unit.product_identifier
    a, b = clinicians["a"], clinicians["b"]
    patient = make_patient(a)
    study_id = patient.study_id
    login(a)
    assert line_of(client, unit_id) == ""
    reservation = reserve(db_session, a, patient, [unit])
    db_session.commit()
    rid = reservation.id
    held = line_of(client, unit_id)
    assert f"Held for patient {study_id}, infusion 1" in held and f'href="/care/reservations/{rid}"' in held, held
    login(b)
    other = line_of(client, unit_id)
    assert "Held for a patient of another clinician" in other and study_id not in other, other
    assert f'href="/care/chain-of-identity?identifier={identifier}"' in other, other
    login(clinicians["pharmacist"])
    reservation = db_session.get(type(reservation), rid)
    issue(db_session, clinicians["pharmacist"], reservation)
    db_session.commit()
    login(a)
    assert f"Issued to patient {study_id}" in line_of(client, unit_id)
    reservation = db_session.get(type(reservation), rid)
    scan(db_session, a, db_session.get(type(patient), patient.id), db_session.get(type(unit), unit_id), rid)
    infuse(db_session, a, clinicians["witness"], db_session.get(type(reservation), rid))
    db_session.commit()
    assert f"Infused in patient {study_id}" in line_of(client, unit_id)
    login(b)
    assert "Infused in a patient of another clinician" in line_of(client, unit_id)


def test_quality_imports_nothing_from_dosing():
    root = Path(__file__).resolve().parents[3] / "batches" / "quality"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("batches.dosing") for n in names), path
