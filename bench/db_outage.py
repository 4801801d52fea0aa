"""A database outage under tablet load: PostgreSQL is stopped for a bounded time while tablets keep working.

gunicorn (the product's gunicorn.conf.py) over a throwaway PostgreSQL started like the test suite's. Each
tablet runs its own MsNK batch through the web pages like an operator (home page, step page, save an entry,
sign the step), and keeps going while the database is down, as a tablet on the floor does. After a warm-up
PostgreSQL is stopped, kept down for BENCH_OUTAGE_S, started again, and the tablets go on for a while.

It fails on: any HTTP 500 (or gunicorn's bare error page), a page during the outage that is not the
product's own 503 page, any request slower than BENCH_MAX_REQUEST_S, a half-saved record (a step entry or
signature without its audit entry), a broken audit chain, or more than BENCH_MAX_LOG_BPS bytes of error log
per second of outage. The baseline is the p95 of the same requests before the outage, in the same run.

Settings (environment): BENCH_TABLETS (10), BENCH_OUTAGE_S (60), BENCH_WARMUP_S (10), BENCH_RECOVERY_S (15),
BENCH_THINK_S (0.5), BENCH_MAX_REQUEST_S (6), BENCH_MAX_LOG_BPS (2048).
"""
from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TABLETS = int(os.environ.get("BENCH_TABLETS", 10))
OUTAGE_S = float(os.environ.get("BENCH_OUTAGE_S", 60))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", 10))
RECOVERY_S = float(os.environ.get("BENCH_RECOVERY_S", 15))
THINK_S = float(os.environ.get("BENCH_THINK_S", 0.5))
MAX_REQUEST_S = float(os.environ.get("BENCH_MAX_REQUEST_S", 6))
MAX_LOG_BPS = float(os.environ.get("BENCH_MAX_LOG_BPS", 2048))


class Phase:
    """Which part of the run a request started in: before, during or after the outage."""

    def __init__(self) -> None:
        self.name = "before"


def run_tablet(port: int, batch: dict[str, Any], user: str, verifier: str, password: str, lots: dict[str, str],
               phase: Phase,
               stop: threading.Event, results: list[tuple[str, str, int, float, str]]) -> None:
    from tablets import plan_for

    conn = [http.client.HTTPConnection("127.0.0.1", port, timeout=MAX_REQUEST_S * 5)]
    jars: list[dict[str, str]] = [{}, {}]  # the performer's and the verifier's sessions on one tablet
    tokens = ["", ""]
    last = [0]  # this tablet's last status

    def request(kind: str, method: str, path: str, form: dict[str, str] | None = None, who: int = 0) -> str:
        import urllib.parse

        cookies, csrf = jars[who], tokens

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrf_token": csrf[who]})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started_in, started = phase.name, time.perf_counter()
        try:
            conn[0].request(method, path, body=body, headers=headers)
            response = conn[0].getresponse()
            text = response.read().decode("utf-8", "replace")
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn[0].close()
            conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=MAX_REQUEST_S * 5)
            results.append((started_in, kind, 0, time.perf_counter() - started, f"connection: {exc}"))
            last[0] = 0
            return ""
        elapsed = time.perf_counter() - started
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if token:
            csrf[who] = token.group(1)
        note = "own 503 page" if status == 503 and "Nothing was saved" in text else ""
        if status == 500 or "Internal Server Error" in text:
            note = "500"
        elif status in (409, 422):
            found = re.search(r'role="alert">([^<]*)', text) or re.search(r'class="lead">([^<]*)', text)
            note = f"{kind}: {found.group(1).strip()[:60]}" if found else kind
        results.append((started_in, kind, status, elapsed, note))
        last[0] = status
        return text

    request("login", "GET", "/login")
    request("login", "POST", "/login", {"username": user, "password": password})
    request("login", "GET", "/login", who=1)
    request("login", "POST", "/login", {"username": verifier, "password": password}, who=1)
    step_ids = dict(zip([k for k, _ in plan_for(batch, lots)], batch["steps"]))
    base = f"/batches/{batch['batch_id']}/steps"
    while not stop.is_set():
        for key, saves in plan_for(batch, lots):
            step = f"{base}/{step_ids[key]}"
            for values in saves:
                while not stop.is_set():  # an operator who gets "nothing was saved" tries again
                    request("home page", "GET", "/")
                    page = request("step page", "GET", step)
                    version = re.search(r'name="version" value="(\d+)"', page)
                    request("save entry", "POST", f"{step}/entries",
                            {**values, "version": version.group(1) if version else ""})
                    time.sleep(THINK_S)
                    if last[0] != 503:
                        break
            while not stop.is_set():
                page = request("step page", "GET", step)
                version = re.search(r'name="version" value="(\d+)"', page)
                request("sign step", "POST", f"{step}/sign", {"meaning": "performed", "sign_username": user,
                                                              "sign_password": password,
                                                              "version": version.group(1) if version else ""})
                time.sleep(THINK_S)
                if last[0] != 503:
                    break
            while not stop.is_set() and 'value="verified"' in request("step page", "GET", step, who=1):
                request("sign step", "POST", f"{step}/sign", {"meaning": "verified", "sign_username": verifier,
                                                              "sign_password": password}, who=1)
                time.sleep(THINK_S)
                if last[0] != 503:
                    break


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def main() -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.audit import AuditEntry, verify_chain
    from app.cli import upgrade_database
    from app.db import make_engine
    from app.signatures import Signature
    from batches.execution.models import StepEntry
    from tablets import free_port, wait_for
    from tests.batches.execution import scenario
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    instance = tempfile.mkdtemp(prefix="nkmes-bench-outage-")
    error_log = os.path.join(instance, "error.log")
    gunicorn = None
    try:
        url = server.create_database("outage")
        upgrade_database(url)
        engine = make_engine(url)
        with Session(engine) as sess:
            info = scenario.build(sess, batches=TABLETS, operators=TABLETS * 2)
            sess.commit()
        engine.dispose()
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "bench-" + "x" * 40,
               "SITE_TIMEZONE": "UTC", "BIND": f"127.0.0.1:{port}", "ACCESS_LOG": "off"}
        with open(error_log, "wb") as log:
            gunicorn = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
                                         "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=log)

        def status_of(path: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            return conn.getresponse().status

        wait_for(lambda: status_of("/health") == 200, 60, "gunicorn")
        lots = {code: f"{code}-DEMO-01" for code in ("FICOLL", "NK-EXP-KIT", "IL2", "IL15", "NK-MEDIUM",
                                                       "MPB-SIA1", "FORM-BUFFER")}
        phase, stop, results = Phase(), threading.Event(), []
        users = info["users"]
        threads = [threading.Thread(target=run_tablet, args=(port, batch, users[f"operator{2 * n}"],
                                                             users[f"operator{2 * n + 1}"], info["password"],
                                                             lots, phase, stop, results))
                   for n, batch in enumerate(info["batches"])]
        for thread in threads:
            thread.start()
        time.sleep(WARMUP_S)
        log_before = os.path.getsize(error_log)
        options = (f"-p {server.port} -k {server.root} -h 127.0.0.1 -F -c fsync=off -c full_page_writes=off "
                   "-c synchronous_commit=off -c max_connections=200")
        pg_ctl = os.path.join(server.bin_dir, "pg_ctl")
        server._run(pg_ctl, "-D", server.data, "-m", "immediate", "stop")
        phase.name = "during"
        down_at = time.perf_counter()
        probes = Counter()
        while time.perf_counter() - down_at < OUTAGE_S:
            probes[f"live {status_of('/health/live')}, ready {status_of('/health/ready')}"] += 1
            time.sleep(1)
        server._run(pg_ctl, "-D", server.data, "-o", options, "-l", os.path.join(server.root, "server.log"),
                    "-w", "start")
        outage_s = time.perf_counter() - down_at
        phase.name = "after"
        up_at = time.perf_counter()
        first_save_after = None
        while time.perf_counter() - up_at < RECOVERY_S:
            time.sleep(0.2)
            if first_save_after is None and any(p == "after" and k == "save entry" and s == 302
                                                for p, k, s, _e, _n in list(results)):
                first_save_after = time.perf_counter() - up_at
        log_during = os.path.getsize(error_log) - log_before
        stop.set()
        for thread in threads:
            thread.join()

        engine = make_engine(url)
        with Session(engine) as sess:
            chain = verify_chain(sess)
            audited = {(e.table_name, e.record_id) for e in sess.execute(
                select(AuditEntry).where(AuditEntry.action == "insert",
                                         AuditEntry.table_name.in_(["step_entry", "signature"]))).scalars()}
            entries = [str(i) for i in sess.execute(select(StepEntry.id)).scalars()]
            signatures = [str(i) for i in sess.execute(select(Signature.id)).scalars()]
        engine.dispose()
        half_saved = ([f"step_entry {i}" for i in entries if ("step_entry", i) not in audited]
                      + [f"signature {i}" for i in signatures if ("signature", i) not in audited])

        by_phase: dict[str, Counter] = defaultdict(Counter)
        times: dict[str, list[float]] = defaultdict(list)
        for started_in, kind, status, elapsed, note in results:
            by_phase[started_in][f"{status}{' ' + note if note else ''}"] += 1
            times[started_in].append(elapsed)
        print(f"tablets: {TABLETS}, gunicorn over PostgreSQL stopped for {outage_s:.1f} s "
              f"(warm-up {WARMUP_S:.0f} s, then {RECOVERY_S:.0f} s after)")
        for name in ("before", "during", "after"):
            print(f"{name:<7} {sum(by_phase[name].values()):>6} requests: "
                  + ", ".join(f"HTTP {k}: {v}" for k, v in sorted(by_phase[name].items())))
        baseline = p95(times["before"])
        for name in ("before", "during", "after"):
            if times[name]:
                print(f"{name:<7} p95 {p95(times[name]) * 1000:.0f} ms, max {max(times[name]) * 1000:.0f} ms "
                      f"= {p95(times[name]) / baseline:.2f} x the baseline p95")
        print("probes during the outage: " + ", ".join(f"{k} ({v}x)" for k, v in probes.items()))
        print(f"first entry saved {first_save_after:.2f} s after PostgreSQL was back" if first_save_after is not None
              else "no entry saved after PostgreSQL was back")
        log_bps = log_during / outage_s
        print(f"error log during the outage: {log_during} bytes, {log_bps:.0f} bytes/s")
        print(f"audit chain: {chain.checked} entries, " + ("intact" if chain.ok else f"BROKEN at {chain.broken_id}"))
        print(f"records without their audit entry: {len(half_saved)}")
        misses = []
        errors_500 = sum(v for c in by_phase.values() for k, v in c.items() if "500" in k)
        not_own = sum(v for k, v in by_phase["during"].items() if k.startswith("503") and "own" not in k)
        if errors_500:
            misses.append(f"{errors_500} HTTP 500")
        if not_own:
            misses.append(f"{not_own} 503 without the product's page")
        if any(status == 0 for _p, _k, status, _e, _n in results):
            misses.append("connections failed")
        slow = [e for _p, _k, _s, e, _n in results if e > MAX_REQUEST_S]
        if slow:
            misses.append(f"{len(slow)} requests slower than {MAX_REQUEST_S:.0f} s")
        if half_saved:
            misses.append(f"half-saved: {half_saved[:5]}")
        if not chain.ok:
            misses.append("audit chain broken")
        if log_bps > MAX_LOG_BPS:
            misses.append(f"error log {log_bps:.0f} bytes/s > {MAX_LOG_BPS:.0f}")
        if first_save_after is None:
            misses.append("no save after recovery")
        print("RESULT:", "target met" if not misses else "MISSED: " + "; ".join(misses))
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            try:
                gunicorn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        server.stop()


if __name__ == "__main__":
    main()
