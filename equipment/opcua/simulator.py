"""An OPC UA server (asyncua) that plays the demo equipment: two CO2 incubators, a rocking bioreactor
and an LN2 freezer, with noise, slow drift and door openings.

Commands (Python methods, and OPC UA methods on the ``Simulator`` object for ``flask equipment
simulator ...``): inject an excursion, freeze a value, set a value, drop all connections, restart.
Variables are ``ns=2;s=<ASSET CODE>.<Parameter>``. Port and endpoint come from the environment:
``OPCUA_SIM_HOST`` (127.0.0.1), ``OPCUA_SIM_PORT`` (4840) and ``OPCUA_SIM_ENDPOINT`` (the address the
demo equipment points at, default ``opc.tcp://<host>:<port>``). As a service (``flask services run
opcua-simulator``, ``flask equipment simulator`` or ``python -m equipment.opcua.simulator``) SIGTERM or
SIGINT closes the server and the process exits 0 within seconds.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("equipment.simulator")
NAMESPACE_URI = "urn:nkmes:equipment-simulator"
SERVER_URI = "urn:nkmes:equipment-simulator:server"


@dataclass
class Signal:
    """One simulated variable: set point, noise, slow drift, and optional door-opening dips."""

    asset: str
    parameter: str
    unit: str
    setpoint: float
    noise: float
    drift: float = 0.0
    low: float | None = None
    high: float | None = None
    door_effect: float = 0.0  # change while the incubator door is open
    boolean: bool = False

    @property
    def path(self) -> str:
        return f"{self.asset}.{self.parameter}"


DEMO_EQUIPMENT: list[tuple[str, str, str, list[Signal]]] = [
    ("CO2-INC-01", "co2_incubator", "Heracell CO2 incubator 1", [
        Signal("CO2-INC-01", "Temperature", "C", 37.0, 0.03, 0.05, 36.0, 38.0, door_effect=-0.6),
        Signal("CO2-INC-01", "CO2", "%", 5.0, 0.02, 0.05, 4.5, 5.5, door_effect=-0.8),
        Signal("CO2-INC-01", "RelativeHumidity", "%", 93.0, 0.3, 0.5, 85.0, None, door_effect=-6.0),
        Signal("CO2-INC-01", "DoorOpen", "", 0.0, 0.0, boolean=True),
    ]),
    ("CO2-INC-02", "co2_incubator", "Heracell CO2 incubator 2", [
        Signal("CO2-INC-02", "Temperature", "C", 37.0, 0.03, 0.05, 36.0, 38.0, door_effect=-0.6),
        Signal("CO2-INC-02", "CO2", "%", 5.0, 0.02, 0.05, 4.5, 5.5, door_effect=-0.8),
        Signal("CO2-INC-02", "RelativeHumidity", "%", 93.0, 0.3, 0.5, 85.0, None, door_effect=-6.0),
        Signal("CO2-INC-02", "DoorOpen", "", 0.0, 0.0, boolean=True),
    ]),
    ("BR-ROCK-01", "rocking_bioreactor", "Rocking bioreactor 1", [
        Signal("BR-ROCK-01", "Temperature", "C", 37.0, 0.02, 0.03, 36.0, 38.0),
        Signal("BR-ROCK-01", "pH", "", 7.2, 0.01, 0.05, 7.0, 7.4),
        Signal("BR-ROCK-01", "DissolvedOxygen", "%", 45.0, 0.5, 3.0, 30.0, None),
        Signal("BR-ROCK-01", "RockingRate", "rpm", 20.0, 0.1, 0.0),
        Signal("BR-ROCK-01", "Weight", "kg", 1.05, 0.002, 0.01),
    ]),
    ("LN2-FRZ-01", "ln2_freezer", "LN2 vapour-phase freezer 1", [
        Signal("LN2-FRZ-01", "Temperature", "C", -185.0, 0.4, 2.0, None, -150.0),
    ]),
]


def env_port() -> int:
    return int(os.environ.get("OPCUA_SIM_PORT", "4840"))


def env_host() -> str:
    return os.environ.get("OPCUA_SIM_HOST", "127.0.0.1")


def env_endpoint() -> str:
    return os.environ.get("OPCUA_SIM_ENDPOINT") or f"opc.tcp://{env_host()}:{env_port()}"


class Simulator:
    """The simulated equipment server; start it in an event loop, or in a thread for tests."""

    def __init__(self, port: int | None = None, host: str | None = None, *, update_interval: float = 1.0,
                 equipment: list[tuple[str, str, str, list[Signal]]] | None = None, seed: int | None = None,
                 door_openings: bool = True, security: bool = False):
        self.port = port if port is not None else env_port()
        self.host = host or env_host()
        self.update_interval = update_interval
        self.equipment = equipment if equipment is not None else DEMO_EQUIPMENT
        self.signals = {s.path: s for _c, _t, _n, signals in self.equipment for s in signals}
        self.random = random.Random(seed)
        self.door_openings = door_openings
        self.security = security
        self.server: Any = None
        self.nodes: dict[str, Any] = {}
        self.frozen: dict[str, float] = {}
        self.excursions: dict[str, tuple[float, float]] = {}  # path -> (value, until monotonic)
        self.fixed: dict[str, float] = {}
        self.door_open_until: dict[str, float] = {}
        self.drift_phase = {p: self.random.uniform(0, 2 * math.pi) for p in self.signals}
        self.started_at = time.monotonic()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._stop_requested = False

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        from asyncua import Server, ua, uamethod

        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}/")
        server.set_server_name("NK MES equipment simulator")
        if self.security:
            from equipment.opcua.security import ensure_certificate

            server.set_security_policy([ua.SecurityPolicyType.NoSecurity,
                                        ua.SecurityPolicyType.Basic256Sha256_Sign,
                                        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            cert, key = await ensure_certificate(name="simulator", application_uri=SERVER_URI, server=True)
            await server.set_application_uri(SERVER_URI)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
        idx = await server.register_namespace(NAMESPACE_URI)
        objects = server.nodes.objects
        now = datetime.now(timezone.utc)
        for code, _type, name, signals in self.equipment:
            folder = await objects.add_object(ua.NodeId(code, idx), ua.QualifiedName(code, idx))
            await folder.write_attribute(ua.AttributeIds.Description,
                                         ua.DataValue(ua.Variant(ua.LocalizedText(name))))
            for signal in signals:
                initial = ua.Variant(False, ua.VariantType.Boolean) if signal.boolean else \
                    ua.Variant(signal.setpoint, ua.VariantType.Double)
                node = await folder.add_variable(ua.NodeId(signal.path, idx),
                                                 ua.QualifiedName(signal.parameter, idx), initial)
                await node.write_value(ua.DataValue(initial, SourceTimestamp=now, ServerTimestamp=now))
                self.nodes[signal.path] = node
        control = await objects.add_object(ua.NodeId("Simulator", idx), ua.QualifiedName("Simulator", idx))

        @uamethod
        def inject_excursion(_parent: Any, path: str, value: float, seconds: float) -> bool:
            return self.inject_excursion(path, value, seconds)

        @uamethod
        def freeze(_parent: Any, path: str, frozen: bool) -> bool:
            return self.freeze(path, frozen)

        @uamethod
        def drop_connections(_parent: Any) -> int:
            return self.drop_connections()

        string, double, boolean = ua.VariantType.String, ua.VariantType.Double, ua.VariantType.Boolean
        await control.add_method(ua.NodeId("Simulator.InjectExcursion", idx), ua.QualifiedName("InjectExcursion", idx),
                                 inject_excursion, [string, double, double], [boolean])
        await control.add_method(ua.NodeId("Simulator.Freeze", idx), ua.QualifiedName("Freeze", idx),
                                 freeze, [string, boolean], [boolean])
        await control.add_method(ua.NodeId("Simulator.DropConnections", idx),
                                 ua.QualifiedName("DropConnections", idx), drop_connections, [], [ua.VariantType.Int32])
        await server.start()
        self.server = server
        self._task = asyncio.create_task(self._update_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop and start again: a new server instance with a new StartTime (values not replayed)."""
        await self.stop()
        if downtime:
            await asyncio.sleep(downtime)
        await self.start()

    # --- commands -------------------------------------------------------------------------------
    def _known(self, path: str) -> bool:
        return path in self.signals

    def inject_excursion(self, path: str, value: float, seconds: float) -> bool:
        """Hold a variable at ``value`` for ``seconds`` (then it returns to its normal signal)."""
        if not self._known(path):
            return False
        self.excursions[path] = (float(value), time.monotonic() + float(seconds))
        return True

    def freeze(self, path: str, frozen: bool = True) -> bool:
        """Stop a variable from changing (a stuck sensor), or let it move again."""
        if not self._known(path):
            return False
        if frozen:
            self.frozen[path] = self.current(path)
        else:
            self.frozen.pop(path, None)
        return True

    def set_value(self, path: str, value: float | None) -> None:
        """Fix a variable at an exact value (None: back to the simulated signal); written at once."""
        if value is None:
            self.fixed.pop(path, None)
        else:
            self.fixed[path] = float(value)

    def drop_connections(self) -> int:
        """Close every client connection (the server keeps running)."""
        if self.server is None or self.server.bserver is None:
            return 0
        clients = list(self.server.bserver.clients)
        for protocol in clients:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abort()
        return len(clients)

    async def stall_subscriptions(self) -> int:
        """Stop publishing on every subscription while connections stay open (a hung server)."""
        if self.server is None:
            return 0
        subscriptions = list(self.server.iserver.subscription_service.subscriptions.values())
        for subscription in subscriptions:
            await subscription.stop()
        return len(subscriptions)

    # --- signals ----------------------------------------------------------------------------------
    def current(self, path: str) -> float:
        signal = self.signals[path]
        now = time.monotonic()
        if path in self.fixed:
            return self.fixed[path]
        if path in self.frozen:
            return self.frozen[path]
        if path in self.excursions:
            value, until = self.excursions[path]
            if now < until:
                return value
            del self.excursions[path]
        door_open = self.door_open_until.get(signal.asset, 0) > now
        if signal.boolean:
            return 1.0 if door_open else 0.0
        elapsed = now - self.started_at
        drift = signal.drift * math.sin(elapsed / 3600 * 2 * math.pi + self.drift_phase[path])
        value = signal.setpoint + drift + self.random.gauss(0, signal.noise) if signal.noise else signal.setpoint + drift
        if door_open:
            value += signal.door_effect
        return value

    async def write(self, path: str, value: float, *, source_time: bool = True, server_time: bool = True) -> None:
        """Write a value stamped now; ``source_time``/``server_time`` False leave that timestamp null, as
        servers that omit them do."""
        from asyncua import ua

        signal = self.signals[path]
        now = datetime.now(timezone.utc)
        variant = ua.Variant(bool(value), ua.VariantType.Boolean) if signal.boolean else \
            ua.Variant(float(value), ua.VariantType.Double)
        await self.server.write_attribute_value(self.nodes[path].nodeid, ua.DataValue(
            variant, SourceTimestamp=now if source_time else None, ServerTimestamp=now if server_time else None))

    async def _update_loop(self) -> None:
        while True:
            now = time.monotonic()
            if self.door_openings:
                for code, asset_type, _n, _s in self.equipment:
                    if asset_type == "co2_incubator" and self.door_open_until.get(code, 0) < now \
                            and self.random.random() < self.update_interval / 900:  # about every 15 min
                        self.door_open_until[code] = now + self.random.uniform(15, 45)
            for path in self.signals:
                await self.write(path, round(self.current(path), 4))
            await asyncio.sleep(self.update_interval)

    # --- running in a thread (tests) ---------------------------------------------------------------
    def start_in_thread(self, timeout: float = 15.0) -> "Simulator":
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            await self._stopped.wait()
            await self.stop()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="opcua-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if errors:
            raise errors[0]
        return self

    def call(self, coroutine_function: Any, *args: Any, timeout: float = 15.0) -> Any:
        """Run a coroutine of this simulator in its own loop, from another thread."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine_function(*args), self._loop).result(timeout)

    def stop_thread(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)


    # --- running as a service ------------------------------------------------------------------------
    def request_stop(self, why: str = "stop requested") -> None:
        """Ask the serving simulator to stop (from its own event loop, e.g. a signal handler)."""
        if self._stop_requested:
            log.info("%s: already stopping", why)
            return
        self._stop_requested = True
        log.info("%s: stopping the simulator", why)
        if self._stopped is not None:
            self._stopped.set()

    async def serve(self, stop_timeout: float = 10.0) -> bool:
        """Serve until request_stop(); then close the server. False if it did not close within stop_timeout."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self._stop_requested:
            self._stopped.set()
        await self.start()
        log.info("OPC UA simulator on %s", self.endpoint)
        try:
            await self._stopped.wait()
        finally:
            try:
                await asyncio.wait_for(self.stop(), stop_timeout)
            except asyncio.TimeoutError:
                log.error("the OPC UA server did not close within %.0f s", stop_timeout)
                return False
        log.info("simulator stopped")
        return True


def run_service(simulator: Simulator | None = None) -> None:
    """The `make run` service: serve the demo equipment until SIGTERM or SIGINT, then close the server and
    return (exit 0), or exit 1 if the server did not close in time."""
    from equipment.opcua.service import run_until_signalled

    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(levelname)s %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    simulator = simulator or Simulator()
    closed: list[bool] = []

    async def serve() -> None:
        closed.append(await simulator.serve())

    try:
        run_until_signalled(serve, simulator.request_stop)
    except KeyboardInterrupt:  # an interrupt before the handlers were installed: nothing was serving yet
        return
    if closed != [True]:
        raise SystemExit(1)


if __name__ == "__main__":
    run_service()
