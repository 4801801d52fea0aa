"""Many clinicians reserving the last bag at the same moment, each with their own HTTP request to the served
app and their own database transaction: exactly one reservation is made, every other request gets a 409
naming the reservation that holds the bag, no other error, and the bag is held once."""
from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app import create_app, db
from app.cli import upgrade_database
from app.db import utcnow
from tests.conftest import make_config

CLINICIANS = 24


@pytest.fixture(scope="module")
def served(backend: str, fresh_database_url: Callable[[str], str]) -> Iterator[dict[str, Any]]:
    from app.audit import Actor, acting_as
    from app.users import create_user
    from tests.batches.dosing.serve_care import add_care_people, build_released_lot
    from tests.batches.execution import scenario

    url = fresh_database_url(backend)
    upgrade_database(url)
    app = create_app(make_config(url))
    with app.app_context():
        info = scenario.build(db.session, batches=1)
        info.update(build_released_lot(db.session, info))
        info.update(add_care_people(db.session, info, patients=CLINICIANS))
        from batches.dosing.models import Patient

        names = []
        with acting_as(Actor(None, "scenario")):
            for n, p in enumerate(info["patients"]):
                user = create_user(db.session, username=f"race-clin{n}", full_name=f"Dr Race {n}",
                                   password=info["password"], roles=["clinician"])
                db.session.get(Patient, p["id"]).treating_clinician_id = user.id
                names.append(user.username)
        info["clinicians"] = names
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    info["base"], info["app"] = f"http://127.0.0.1:{server.server_port}", app
    yield info
    server.shutdown()
    db.get_engine(url).dispose()


def post(base: str, path: str, user: str, password: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_many_clinicians_reserve_the_last_bag_at_once(served):
    last_bag = served["bags"][-1]["id"]
    planned = (utcnow() + timedelta(hours=3)).isoformat()
    barrier = threading.Barrier(CLINICIANS)
    outcomes: list[tuple[int, dict[str, Any], str]] = []
    lock = threading.Lock()

    def reserve(n: int) -> None:
        user = served["clinicians"][n]
        body = {"patient_id": served["patients"][n]["id"], "infusion_number": 1, "planned_at": planned,
                "unit_ids": [last_bag], "username": user, "password": served["password"]}
        barrier.wait()
        try:
            status, payload = post(served["base"], "/api/v1/reservations", user, served["password"], body)
        except Exception as exc:  # noqa: BLE001 - counted as an error below
            status, payload = -1, {"message": repr(exc)}
        with lock:
            outcomes.append((status, payload, user))

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(CLINICIANS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    statuses = sorted(s for s, _, _ in outcomes)
    assert len(outcomes) == CLINICIANS
    assert statuses.count(201) == 1 and statuses.count(409) == CLINICIANS - 1, statuses
    [(_, won, winner)] = [o for o in outcomes if o[0] == 201]
    for status, payload, _ in outcomes:
        if status == 409:
            assert "Not reserved" in payload["message"] and won["number"] in payload["message"], payload
            assert "already reserved" in payload["message"]
    from batches.dosing.care_models import DoseReservation, ReservedBag

    with served["app"].app_context():
        held = db.session.execute(select(func.count(ReservedBag.id)).where(ReservedBag.unit_id == last_bag)).scalar_one()
        made = db.session.execute(select(func.count(DoseReservation.id))).scalar_one()
        db.session.remove()
    assert held == 1 and made == 1
