"""The OPC UA simulator as a service: a stop signal closes the server and the process exits 0, promptly."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICE = [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "services", "run", "opcua-simulator"]
MODULE = [sys.executable, "-m", "equipment.opcua.simulator"]


async def _read_temperature(port: int) -> float:
    from asyncua import Client

    async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=5) as client:
        return await client.get_node("ns=2;s=CO2-INC-01.Temperature").read_value()


def _wait_for_log(path: Path, text: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"the simulator exited with {process.returncode}: {path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s")


@pytest.mark.parametrize("launch, stop_signal", [(SERVICE, signal.SIGTERM), (MODULE, signal.SIGINT)],
                         ids=["service-SIGTERM", "module-SIGINT"])
def test_a_stop_signal_closes_the_simulator_and_exits_0(tmp_path, launch, stop_signal):
    port = free_port()
    log_path = tmp_path / "simulator.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPCUA_SIM_HOST="127.0.0.1", OPCUA_SIM_PORT=str(port),
               DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}", SECRET_KEY="simulator-test")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(launch, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        _wait_for_log(log_path, "OPC UA simulator on", process)
        assert 30.0 < asyncio.run(_read_temperature(port)) < 45.0  # serving the demo equipment
        asked = time.monotonic()
        process.send_signal(stop_signal)
        assert process.wait(15) == 0
        assert time.monotonic() - asked < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    log_text = log_path.read_text()
    assert f"{stop_signal.name} received" in log_text and "simulator stopped" in log_text
