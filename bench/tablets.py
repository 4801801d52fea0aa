"""Tablets under load: saving an entry and signing a step with 20 concurrent tablets.

gunicorn (with the product's gunicorn.conf.py) over a throwaway PostgreSQL (started like the test suite's),
with the OPC UA simulator and the collector writing telemetry into the same database. Each tablet runs its
own MsNK batch through the web pages like an operator: open the step, save one entry at a time, sign
"performed", and a second person on the same tablet signs "verified" where the recipe asks. Every cycle also
requests the home page, the trivial authenticated page that is the baseline measured in the same run.

Operators work independently: each tablet starts at a random moment within the first think time and pauses
a random 0.5 to 1.5 think times between requests (seeded, so runs are repeatable). BENCH_LOCKSTEP=1 instead
starts all tablets at once with fixed pauses, so that all twenty send the same request in the same
millisecond every cycle: a burst worst case rather than a shop floor.

Targets (both measured against the same run): saving an entry p95 at most 100 ms and at most 1.5 x the step
page's p95; signing a step p95 at most 100 ms and at most 1.5 x (the step page's p95 plus one password
verification, which every signature must do); no errors; the audit hash chain intact afterwards. The home
page is still timed and printed, as the cheapest authenticated page.
Besides the client-side figures the run prints the server's own time per request (from the access log),
the CPU time each component used, and the gunicorn workers' memory.

Settings (environment): BENCH_TABLETS (20), BENCH_SECONDS (60, the run stops then even if batches are not
finished), BENCH_THINK_S (1.0, mean pause between a tablet's requests), BENCH_LOCKSTEP (0), BENCH_WORKERS and
BENCH_THREADS (default: gunicorn.conf.py's), BENCH_ARGON2 ("production", the configured ARGON2_* parameters,
or "test", the suite's cheap ones, to see the application's own cost of signing apart from the password hash).
"""
from __future__ import annotations

import http.client
import os
import random
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLETS = int(os.environ.get("BENCH_TABLETS", 20))
SECONDS = float(os.environ.get("BENCH_SECONDS", 60))
THINK_S = float(os.environ.get("BENCH_THINK_S", 1.0))
LOCKSTEP = os.environ.get("BENCH_LOCKSTEP", "0") == "1"
WORKERS = os.environ.get("BENCH_WORKERS", "")
THREADS = os.environ.get("BENCH_THREADS", "")
KINDS = ("trivial page", "step page", "save entry", "sign step")
ARGON2 = os.environ.get("BENCH_ARGON2", "production")


class Tablet:
    """One browser session: cookies, CSRF token from the pages, timings by kind of request."""

    def __init__(self, port: int, timings: dict[str, list[float]], errors: list[str]) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.timings = timings
        self.errors = errors
        self.csrf = ""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, kind: str | None, method: str, path: str, form: dict[str, Any] | None = None,
                expect: int = 200) -> str:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrf_token": self.csrf})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (OSError, http.client.HTTPException) as exc:
                # A kept-alive connection the server closed while the tablet was idle: a browser opens a
                # new one and sends the request again, and so does this client (once).
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                        BrokenPipeError)):
                    self.errors.append(f"{kind} {path}: {exc}")
                    return ""
                started = time.perf_counter()
        elapsed = time.perf_counter() - started
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        if kind:
            self.timings[kind].append(elapsed)
        if response.status != expect:
            message = re.search(r'role="alert">([^<]*)', text) or re.search(r"<h1>([^<]*)", text)
            self.errors.append(f"{kind} {path}: HTTP {response.status} {message.group(1).strip() if message else ''}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if token:
            self.csrf = token.group(1)
        return text

    def log_in(self, username: str, password: str) -> None:
        self.request(None, "GET", "/login")
        self.request(None, "POST", "/login", {"username": username, "password": password}, expect=302)


def plan_for(batch: dict[str, Any], lots: dict[str, str]) -> list[tuple[str, list[dict[str, str]]]]:
    """The MsNK batch, one dict per save (a material lot and its quantity go together)."""
    started = datetime.now(timezone.utc) - timedelta(hours=47, minutes=30)
    material = lambda key, code: {key: lots[code], f"{key}__quantity": "1"}  # noqa: E731
    return [
        ("thaw", [{"din_matches": "pass"}, {"thaw_cabinet": batch["cabinet"]}, {"bag_intact": "intact"}]),
        ("mnc_isolation", [material("gradient_lot", "FICOLL"), {"mnc_total_cells": "1.2x10^8"},
                           {"mnc_viability": "92"}]),
        ("seeding", [material("expansion_kit_lot", "NK-EXP-KIT"), material("il2_lot", "IL2"),
                     material("il15_lot", "IL15"), {"seeded_cells": "5e7"},
                     {"culture_incubator": batch["incubator"]}]),
        ("feed_day3", [material("medium_lot_d3", "NK-MEDIUM"), {"vcd_d3": "5e5"}, {"viability_d3": "90"},
                       {"total_cells_d3": "1.5e8"}]),
        ("bioreactor_transfer", [{"vcd_d7": "1e6"}, {"viability_d7": "92"}, {"total_cells_d7": "1e9"},
                                 {"bioreactor": batch["bioreactor"]}, {"incubator_released": "released"}]),
        ("feed_day11", [material("medium_lot_d11", "NK-MEDIUM"), {"vcd_d11": "3e6"}, {"viability_d11": "93"},
                        {"total_cells_d11": "5e9"}]),
        ("harvest", [{"total_cells_d14": "1.3e10"}, {"viability_d14": "95"}, {"purity_d14": "99"},
                     {"bioreactor_released": "released"}]),
        ("mpb_start", [material("mpb_lot", "MPB-SIA1"), {"mpb_concentration": "2.0"},
                       {"mpb_added_at": started.strftime("%Y-%m-%dT%H:%M")}]),
        ("mpb_stop", [{"mpb_removed_at": "now"}, {"cd22_ligand_pct": "99.5"}, {"viability_engineered": "90"}]),
        ("formulation", [material("formulation_buffer_lot", "FORM-BUFFER"), {"final_viable_cells": "1.1e10"},
                         {"bag_count": "4"}, {"bag_volume_ml": "50"}]),
    ]


def run_tablet(port: int, batch: dict[str, Any], performer: str, verifier: str, password: str,
               lots: dict[str, str], start: threading.Barrier, deadline: list[float],
               timings: dict[str, list[float]], errors: list[str], progress: dict[str, int]) -> None:
    first, second = Tablet(port, timings, errors), Tablet(port, timings, errors)
    first.log_in(performer, password)  # the start of a shift, before the measured run
    second.log_in(verifier, password)
    rng = random.Random(performer)

    def pause() -> None:
        time.sleep(THINK_S if LOCKSTEP else rng.uniform(0.5, 1.5) * THINK_S)

    start.wait()
    if not LOCKSTEP:
        time.sleep(rng.uniform(0, THINK_S))
    step_ids = dict(zip([k for k, _ in plan_for(batch, lots)], batch["steps"]))
    base = f"/batches/{batch['batch_id']}/steps"
    for key, saves in plan_for(batch, lots):
        step = f"{base}/{step_ids[key]}"
        for values in saves:
            if time.perf_counter() > deadline[0]:
                return
            first.request("trivial page", "GET", "/")
            page = first.request("step page", "GET", step)
            version = re.search(r'name="version" value="(\d+)"', page)
            first.request("save entry", "POST", f"{step}/entries",
                          {"reason": "benchmark: the batch runs ahead of its plan", **values,
                           "version": version.group(1) if version else ""}, expect=302)
            progress["saves"] += 1
            pause()
        page = first.request("step page", "GET", step)
        version = re.search(r'name="version" value="(\d+)"', page)
        first.request("sign step", "POST", f"{step}/sign", {
            "meaning": "performed", "sign_username": performer, "sign_password": password,
            "version": version.group(1) if version else ""}, expect=302)
        pause()
        if 'value="verified"' in second.request("step page", "GET", step):
            second.request("sign step", "POST", f"{step}/sign", {
                "meaning": "verified", "sign_username": verifier, "sign_password": password}, expect=302)
            pause()
        progress["steps"] += 1


def request_kind(method: str, path: str) -> str | None:
    """The kind of a request from its method and path, as the tablets time it."""
    if path == "/":
        return "trivial page"
    if method == "POST" and path.endswith("/entries"):
        return "save entry"
    if method == "POST" and path.endswith("/sign"):
        return "sign step"
    if method == "GET" and re.fullmatch(r"/batches/\d+/steps/\d+", path):
        return "step page"
    return None


def server_times(access_log: str, since: float) -> dict[str, list[float]]:
    """Seconds the server spent on each request of the measured run, from gunicorn's access log."""
    times: dict[str, list[float]] = defaultdict(list)
    with open(access_log, encoding="utf-8") as log:
        lines = log.readlines()[int(since):]
    for line in lines:
        found = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" \d+ \S+ (\d+)ms', line)
        if found and (kind := request_kind(found.group(1), found.group(2).split("?")[0])):
            times[kind].append(int(found.group(3)) / 1000)
    return times


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time (user + system) of every process, with its command line."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as stat_file:
                stat = stat_file.read()
            with open(f"/proc/{pid}/cmdline", encoding="utf-8") as cmd_file:
                command = cmd_file.read().replace("\0", " ")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(pid)] = (command, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_by_component(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    components: dict[str, float] = defaultdict(float)
    for pid, (command, used) in after.items():
        if "gunicorn" in command:
            name = "gunicorn"
        elif "postgres" in command:
            name = "PostgreSQL"
        elif "services run opcua" in command:
            name = "OPC UA simulator and collector"
        elif pid == os.getpid():
            name = "load generator (this process)"
        else:
            name = "everything else on the machine"
        components[name] += used - before.get(pid, (command, 0.0))[1]
    return components


def rss_mb(pids: list[int]) -> list[float]:
    sizes = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as status:
                line = next(x for x in status if x.startswith("VmRSS:"))
            sizes.append(int(line.split()[1]) / 1024)
        except (OSError, StopIteration):
            continue
    return sizes


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def free_port() -> int:
    from tests.pg import free_port as pick

    return pick()


def wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - the service is still starting
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not come up within {seconds:.0f} s")


def main() -> None:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from app.cli import upgrade_database
    from app.db import make_engine
    from app.users import configure_hasher, password_matches
    from tests.batches.execution import scenario
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    instance = tempfile.mkdtemp(prefix="nkmes-bench-tablets-")
    try:
        url = server.create_database("tablets")
        upgrade_database(url)
        env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "bench-" + "x" * 40,
               "SITE_TIMEZONE": "UTC", "OPCUA_SIM_PORT": str(free_port()), "COLLECTOR_RELOAD_S": "5",
               "COLLECTOR_SPOOL": os.path.join(instance, "spool.sqlite3")}
        os.environ.update({k: env[k] for k in ("OPCUA_SIM_PORT", "INSTANCE_PATH")})
        if ARGON2 == "test":
            configure_hasher(1, 1024, 1)
        engine = make_engine(url)
        with Session(engine) as sess:
            from app.audit import Actor, acting_as
            from equipment.demo import create_demo_equipment

            info = scenario.build(sess, batches=TABLETS, operators=TABLETS * 2)
            with acting_as(Actor(None, "bench")):
                create_demo_equipment(sess)
            sess.commit()
            from app.users import User

            stored_hash = sess.execute(select(User.password_hash).limit(1)).scalar_one()
        started = time.perf_counter()
        password_matches(stored_hash, info["password"])
        verify_ms = (time.perf_counter() - started) * 1000
        flask = [sys.executable, "-m", "flask", "--app", "wsgi", "services", "run"]
        for service in ("opcua-simulator", "opcua-collector"):
            processes.append(subprocess.Popen(flask + [service], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        from equipment.models import TelemetrySample

        def samples() -> int:
            with Session(engine) as sess:
                return sess.execute(select(func.count()).select_from(TelemetrySample)).scalar_one()

        wait_for(lambda: samples() > 0, 60, "the collector (telemetry samples)")
        port = free_port()
        access_log = os.path.join(instance, "access.log")
        web_env = {**env, "BIND": f"127.0.0.1:{port}", "ACCESS_LOG": access_log}
        web_env.update({k: v for k, v in (("WEB_WORKERS", WORKERS), ("WEB_THREADS", THREADS)) if v})
        os.environ.update({k: web_env[k] for k in ("WEB_WORKERS", "WEB_THREADS") if k in web_env})
        web_config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        gunicorn = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
                                     "wsgi:app"], cwd=ROOT, env=web_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        processes.append(gunicorn)

        def healthy() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            return conn.getresponse().status == 200

        wait_for(healthy, 60, "gunicorn")
        samples_before = samples()
        lots = {code: f"{code}-DEMO-01" for code in ("FICOLL", "NK-EXP-KIT", "IL2", "IL15", "NK-MEDIUM",
                                                       "MPB-SIA1", "FORM-BUFFER")}
        timings: dict[str, list[float]] = defaultdict(list)
        errors: list[str] = []
        progress = {"saves": 0, "steps": 0}
        deadline = [float("inf")]
        users = info["users"]
        start = threading.Barrier(TABLETS + 1)
        threads = [threading.Thread(target=run_tablet, args=(
            port, batch, users[f"operator{2 * n}"], users[f"operator{2 * n + 1}"], info["password"], lots, start,
            deadline, timings, errors, progress)) for n, batch in enumerate(info["batches"])]
        for thread in threads:
            thread.start()
        with open(access_log, encoding="utf-8") as log:
            log_lines_before = len(log.readlines())
        cpu_before = cpu_seconds()
        start.wait()
        run_started = time.perf_counter()
        deadline[0] = run_started + SECONDS
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - run_started
        cpu = cpu_by_component(cpu_before, cpu_seconds())
        worker_pids = [int(p) for p in subprocess.run(["pgrep", "-P", str(gunicorn.pid)], capture_output=True,
                                                      text=True).stdout.split()]
        memory = rss_mb(worker_pids)
        time.sleep(0.5)  # the last access-log lines
        on_server = server_times(access_log, log_lines_before)
        samples_during = samples() - samples_before
        from app.audit import verify_chain

        with Session(engine) as sess:  # twenty tablets wrote to one hash chain at once: it must be whole
            chain = verify_chain(sess)

        total = sum(len(v) for v in timings.values())
        load = "lockstep: all tablets at once, fixed pauses" if LOCKSTEP else "independent tablets, random pauses"
        print(f"tablets: {TABLETS} ({load}, mean think time {THINK_S} s), gunicorn {web_config['workers']} workers x "
              f"{web_config['threads']} threads, PostgreSQL, collector wrote {samples_during} samples during "
              f"the run, Argon2 {ARGON2} (one password verification: {verify_ms:.0f} ms)")
        print(f"run: {elapsed:.1f} s, {total} requests, {total / elapsed:.1f} requests/s, "
              f"{progress['saves']} entries saved, {progress['steps']} steps signed, errors: {len(errors)}")
        print(f"{'request':<14}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}   on the server: p50, p95 ms")
        for kind in KINDS:
            values, served = timings.get(kind, []), on_server.get(kind, [])
            if values:
                print(f"{kind:<14}{len(values):>7}{statistics.median(values) * 1000:>9.1f}"
                      f"{p95(values) * 1000:>9.1f}{max(values) * 1000:>9.1f}"
                      + (f"   {statistics.median(served) * 1000:>6.0f}{p95(served) * 1000:>9.0f}" if served else ""))
        print("CPU during the run (2 cores = 200%): " + ", ".join(
            f"{name} {used:.1f} s ({used / elapsed * 100:.0f}%)" for name, used in
            sorted(cpu.items(), key=lambda item: -item[1]) if used >= 0.05))
        if memory:
            print(f"gunicorn workers' memory (RSS): {min(memory):.0f} to {max(memory):.0f} MB each, "
                  f"{sum(memory):.0f} MB in total")
        step_page = p95(timings["step page"])
        bases = {"save entry": (step_page, "the step page's p95"),
                 "sign step": (step_page + verify_ms / 1000, f"the step page's p95 + one password verification "
                                                             f"({verify_ms:.0f} ms)")}
        misses = []
        for kind in ("save entry", "sign step"):
            value = p95(timings[kind])
            base, what = bases[kind]
            ok = value <= 0.100 and value <= 1.5 * base
            if not ok:
                misses.append(f"{kind} p95 {value * 1000:.1f} ms = {value / base:.2f} x")
            print(f"{kind}: p95 {value * 1000:.1f} ms ({'within' if value <= 0.100 else 'OVER'} 100 ms) = "
                  f"{value / base:.2f} x {what} of {base * 1000:.1f} ms "
                  f"({'within' if value <= 1.5 * base else 'OVER'} 1.5 x): {'meets' if ok else 'MISSES'} the target")
        for error in errors[:10]:
            print("error:", error)
        print(f"audit trail after the run: {chain.checked} entries, "
              + ("hash chain intact" if chain.ok else f"BROKEN at entry {chain.broken_id}: {chain.problem}"))
        if errors:
            misses.append(f"{len(errors)} errors")
        if not chain.ok:
            misses.append("audit chain broken")
        print("RESULT:", "target met" if not misses else "target missed: " + "; ".join(misses))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()


if __name__ == "__main__":
    main()
