"""scripts/run.sh starts the OPC UA simulator before the collector and waits until it answers, so the
collector records no data gap at every start."""
from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

RUN_SH = Path(__file__).resolve().parents[2] / "scripts" / "run.sh"


def _wait_for_port_function() -> str:
    text = RUN_SH.read_text()
    return re.search(r"^wait_for_port\(\) \{.*?^\}", text, flags=re.S | re.M).group(0)


def test_the_collector_starts_only_after_the_simulator_answers():
    text = RUN_SH.read_text()
    loop = text[text.index("for service in"):]
    assert loop.index("wait_for_port") < loop.index("done")  # inside the loop, after the simulator starts
    assert 'if [ "$service" = opcua-simulator ]' in loop


def test_wait_for_port_returns_once_something_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_later() -> None:
        time.sleep(0.6)
        server.bind(("127.0.0.1", port))
        server.listen()

    thread = threading.Thread(target=listen_later)
    started = time.monotonic()
    thread.start()
    try:
        result = subprocess.run(["bash", "-c", _wait_for_port_function() + f"\nwait_for_port 127.0.0.1 {port}"],
                                capture_output=True, text=True, timeout=20)
    finally:
        thread.join()
        server.close()
    waited = time.monotonic() - started
    assert result.returncode == 0 and "warning" not in result.stderr
    assert 0.5 <= waited < 10
