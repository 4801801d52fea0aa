"""The equipment domain package: registry and calibration, OPC UA collector and simulator, telemetry,
alarms and gaps. Imports app only, never batches (see README, Architecture)."""
from __future__ import annotations

from typing import Any

from app.permissions import define_permissions, define_record_views

define_permissions({
    "equipment.view": ({"operator", "supervisor", "qc_analyst", "qa", "admin"},
                       "See equipment, live values, telemetry, alarms and gaps"),
    "equipment.manage": ({"admin"}, "Register equipment, OPC UA connections and tags; browse endpoints"),
    "equipment.calibrate": ({"admin", "supervisor"}, "Record calibration and maintenance"),
    "equipment.status": ({"admin", "supervisor"}, "Put equipment out of service, into cleaning, or back"),
    "equipment.alarms": ({"operator", "supervisor", "admin"}, "Acknowledge and shelve equipment alarms"),
})
define_record_views({table: "equipment.view" for table in (
    "equipment_asset", "equipment_service_record", "equipment_usage", "equipment_tag", "telemetry_gap",
    "equipment_alarm", "telemetry_chunk")})


def init_app(app: Any, api: Any) -> None:
    """Register this domain's views, API blueprints, permissions, services, demo data and commands."""
    from app.shell import register_demo_data, register_nav, register_service
    from equipment import api as equipment_api
    from equipment import cli, demo, views

    app.register_blueprint(views.bp)
    api.register_blueprint(equipment_api.blp)
    register_nav("Equipment", "equipment.equipment_list", "equipment.view",
                 "Live values, alarms, calibration and telemetry of incubators, bioreactors and freezers", 40)
    register_service("opcua-simulator", demo.run_simulator_service)
    register_service("opcua-collector", demo.run_collector_service)
    register_service("telemetry-compactor", demo.run_compactor_service)
    register_demo_data(demo.create_demo_equipment)
    app.cli.add_command(cli.equipment_cli)
