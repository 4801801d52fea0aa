"""Demo equipment for `make run` (connected to the simulator), and the two background services."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.audit import Actor, acting_as
from app.db import utcnow
from equipment import operations as ops
from equipment.opcua.simulator import DEMO_EQUIPMENT, env_endpoint

LOCATIONS = {"co2_incubator": "Cleanroom B2", "rocking_bioreactor": "Cleanroom B2", "ln2_freezer": "Cryostore C1"}
ON_DELAY_S = {"Temperature": 120.0, "CO2": 120.0, "RelativeHumidity": 300.0}
DEADBANDS = {"Temperature": 0.2, "CO2": 0.1, "RelativeHumidity": 2.0, "pH": 0.05, "DissolvedOxygen": 2.0}


def create_demo_equipment(sess: Any) -> None:
    """Two CO2 incubators, a rocking bioreactor and an LN2 freezer on the simulator (idempotent)."""
    endpoint = env_endpoint()
    today = utcnow().date()
    with acting_as(Actor(None, "cli:demo-data")):
        for code, asset_type, name, signals in DEMO_EQUIPMENT:
            if ops.find_asset(sess, code) is not None:
                continue
            asset = ops.create_asset(sess, code=code, name=name, asset_type=asset_type,
                                     location=LOCATIONS.get(asset_type, "Cleanroom B2"), endpoint_url=endpoint)
            ops.record_service(sess, asset, kind="calibration", performed_on=today - timedelta(days=30),
                               due_on=today + timedelta(days=335), result="pass", performed_by="Metrology Services",
                               certificate_ref=f"CAL-{code}-{today.year}")
            ops.record_service(sess, asset, kind="maintenance", performed_on=today - timedelta(days=60),
                               due_on=today + timedelta(days=120), result="pass", performed_by="Facilities")
            for signal in signals:
                ops.add_tag(sess, asset, node_id=f"ns=2;s={signal.path}", parameter=signal.parameter,
                            unit=signal.unit, low_limit=signal.low, high_limit=signal.high,
                            on_delay_s=ON_DELAY_S.get(signal.parameter, 60.0), off_delay_s=30.0,
                            deadband=DEADBANDS.get(signal.parameter, 0.0))
        sess.flush()


def run_simulator_service() -> None:
    from equipment.opcua.simulator import run_service

    run_service()


def run_compactor_service() -> None:
    from equipment.samples import run_compactor_service as run

    run()  # every 10 minutes: samples older than the recent window into chunks; stops on SIGTERM


def run_collector_service() -> None:
    from equipment.opcua.collector import main

    main([])  # settings from COLLECTOR_* in the environment; stops cleanly on SIGTERM (scripts/run.sh)
