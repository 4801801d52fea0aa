"""A gunicorn worker killed with SIGKILL while a step is being signed: the step is either signed with its
audit entries or not signed at all, and the audit chain stays intact. The master starts a new worker.

gunicorn (the product's gunicorn.conf.py, one sync worker) over a freshly migrated PostgreSQL. Each trial
sends one "performed" signature over the REST API and kills the worker a small random time after the
request was sent, so the kill lands at different moments: while the passwords are checked, while the
signature and its audit entries are written, at the commit, or after the response.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, verify_chain
from app.cli import upgrade_database
from app.db import make_engine
from app.signatures import Signature
from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 10  # and one signature before them, not interrupted, to time a signature on this machine
DEADLINE_S = 45  # the whole test, gunicorn start included


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _wait(check: Any, until: float, what: str) -> Any:
    while time.monotonic() < until:
        try:
            result = check()
            if result:
                return result
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} within the test's time bound")


def _ready_to_sign(sess: Session, count: int) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """A floor with `count` batches whose first step (thaw) has every entry recorded, ready to be signed."""
    from app.audit import Actor, acting_as
    from app.users import User
    from batches.execution import operations as ops
    from tests.batches.execution import scenario

    info = scenario.build(sess, batches=count, operators=1)
    operator = sess.execute(select(User).where(User.username == info["users"]["operator0"])).scalar_one()
    steps = []
    for batch in info["batches"]:
        step = ops.get_step(sess, batch["steps"][0])
        with acting_as(Actor(operator.id, operator.username)):
            ops.record_entries(sess, step, operator, {
                "din_matches": ops.EntryInput("pass"), "thaw_cabinet": ops.EntryInput(batch["cabinet"]),
                "bag_intact": ops.EntryInput("intact")}, expected_version=None)
            assert not ops.missing_entries(sess, step)
        steps.append((batch["batch_id"], step.id))
    sess.commit()
    return info, steps


def _outcome(url: str, step_id: int, after_audit_id: int) -> dict[str, Any]:
    from batches.execution.models import BatchStep

    engine = make_engine(url)
    try:
        with Session(engine) as sess:
            step = sess.get(BatchStep, step_id)
            signatures = sess.execute(select(Signature).where(Signature.record_table == "batch_step",
                                                              Signature.record_id == str(step_id))).scalars().all()
            audited = sess.execute(select(AuditEntry).where(AuditEntry.id > after_audit_id)).scalars().all()
            chain = verify_chain(sess)
            return {
                "status": step.status,
                "signatures": [s.id for s in signatures],
                "signature_audited": {int(e.record_id) for e in audited
                                      if e.table_name == "signature" and e.action == "insert"},
                "step_audited": [e for e in audited if e.table_name == "batch_step" and e.record_id == str(step_id)
                                 and e.action == "update" and "status" in json.loads(e.changes)],
                "chain": chain,
                "last_audit_id": sess.execute(select(func.max(AuditEntry.id))).scalar() or 0,
            }
    finally:
        engine.dispose()


def _timed_signature(port: int, auth: str, batch_id: int, step_id: int, user: str, password: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        began = time.perf_counter()
        conn.request("POST", f"/api/v1/batches/{batch_id}/steps/{step_id}/signatures",
                     body=json.dumps({"meaning": "performed", "username": user, "password": password}),
                     headers={"Authorization": auth, "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 201
        return time.perf_counter() - began
    finally:
        conn.close()


@pytest.mark.backends("postgresql")
def test_a_worker_killed_while_signing_leaves_the_step_signed_with_its_audit_entries_or_not_at_all(
        backend, fresh_database_url):
    started = time.monotonic()
    until = started + DEADLINE_S
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = make_engine(url)
    with Session(engine) as sess:
        info, steps = _ready_to_sign(sess, TRIALS + 1)
        last_audit_id = sess.execute(select(func.max(AuditEntry.id))).scalar() or 0
    engine.dispose()
    user, password = info["users"]["operator0"], info["password"]
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    port = free_port()
    instance = tempfile.mkdtemp(prefix="nkmes-worker-kill-")
    env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "kill-" + "x" * 40,
           "SITE_TIMEZONE": "UTC", "BIND": f"127.0.0.1:{port}", "ACCESS_LOG": "off", "WEB_WORKERS": "1",
           "WEB_THREADS": "1"}
    log = open(os.path.join(instance, "gunicorn.log"), "wb")
    master = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
                               "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=log)

    def live() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health/live")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    rng = random.Random(14)
    outcomes = []
    try:
        _wait(live, until, "gunicorn answers")
        killed_pids: set[int] = set()
        (batch_id, step_id), steps = steps[0], steps[1:]
        signing_s = _timed_signature(port, auth, batch_id, step_id, user, password)
        last_audit_id = _outcome(url, step_id, last_audit_id)["last_audit_id"]
        for trial, (batch_id, step_id) in enumerate(steps):
            worker = _wait(lambda: live() and [p for p in _children(master.pid) if p not in killed_pids], until,
                           "a worker serves")[0]
            body = json.dumps({"meaning": "performed", "username": user, "password": password})
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            answer: dict[str, Any] = {}

            def send() -> None:
                try:
                    conn.request("POST", f"/api/v1/batches/{batch_id}/steps/{step_id}/signatures", body=body,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
                    sent.set()
                    response = conn.getresponse()
                    answer["status"] = response.status
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    answer["error"] = type(exc).__name__
                finally:
                    sent.set()

            sent = threading.Event()
            thread = threading.Thread(target=send)
            thread.start()
            sent.wait(5)
            # the first trial kills right away, the last well after a normal answer, the others while the
            # request is being served (a signature took signing_s here, undisturbed)
            delay = (0.0 if trial == 0 else signing_s * 3 + 0.2 if trial == TRIALS - 1
                     else rng.uniform(0.2, 1.05) * signing_s)
            time.sleep(delay)
            os.kill(worker, signal.SIGKILL)
            killed_pids.add(worker)
            thread.join(10)
            conn.close()
            assert not thread.is_alive()
            result = _outcome(url, step_id, last_audit_id)
            last_audit_id = result["last_audit_id"]
            outcomes.append((delay, answer, result))
            signed = result["status"] != "in_progress"
            assert result["chain"].ok, (trial, delay, result["chain"])
            if signed:
                assert len(result["signatures"]) == 1, (trial, delay, result)
                assert result["signatures"][0] in result["signature_audited"], (trial, delay, result)
                assert result["step_audited"], (trial, delay, result)
            else:
                assert not result["signatures"] and not result["signature_audited"] and not result["step_audited"], \
                    (trial, delay, result)
                assert answer.get("status") != 201, (trial, delay, answer)
            if answer.get("status") == 201:
                assert signed, (trial, delay, answer)
        # the master replaced the last killed worker, and the new one serves
        _wait(lambda: [p for p in _children(master.pid) if p not in killed_pids] and live(), until,
              "a new worker serves")
    finally:
        master.terminate()
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(5)
        log.close()
    interrupted = [o for o in outcomes if "status" not in o[1]]
    answered = [o for o in outcomes if o[1].get("status") == 201]
    assert interrupted, f"no kill landed before the answer: {outcomes}"  # the test really killed in flight
    assert answered, f"no signature was answered before the kill: {outcomes}"
    assert time.monotonic() - started < DEADLINE_S + 10
