"""batches.sourcing: cord blood unit intake, ISBT 128 identity, donor eligibility, quarantine, acceptance
and chain of custody."""
from __future__ import annotations

from typing import Any

from app.permissions import ALL_ROLES, define_permissions, define_record_views

define_permissions({
    # clinicians see doses and their chain of identity, never donor eligibility or freezer positions
    "sourcing.view": (ALL_ROLES - {"clinician"}, "See cord blood units, their eligibility, criteria results and custody"),
    "sourcing.receive": ({"operator", "supervisor"}, "Receive cord blood units"),
    "sourcing.custody": ({"operator", "supervisor", "qa"}, "Move cord blood units (remove, return, dispose)"),
    "sourcing.disposition": ({"qa"}, "Quarantine, accept, reject and exceptionally release cord blood units"),
    "sourcing.criteria": ({"qa"}, "Draft and approve cord blood acceptance criteria"),
})
define_record_views({table: "sourcing.view" for table in (
    "cbu_acceptance_criteria", "cord_blood_unit", "cbu_criterion_result", "cbu_custody_event",
    "cbu_exceptional_release")})


def init_app(app: Any, api: Any) -> None:
    """Register this part's views, API blueprints, navigation tile and demo data."""
    from app.shell import register_demo_data, register_nav
    from batches.sourcing import api as sourcing_api
    from batches.sourcing import views
    from batches.sourcing.demo import create_demo_units

    if "sourcing" not in app.blueprints:
        app.register_blueprint(views.bp)
        api.register_blueprint(sourcing_api.units_blp)
        api.register_blueprint(sourcing_api.criteria_blp)
    register_nav("Cord blood units", "sourcing.units", "sourcing.view",
                 "Receive, quarantine and accept cord blood units; chain of custody", order=10)
    register_demo_data(create_demo_units)
