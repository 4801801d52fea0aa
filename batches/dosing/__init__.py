"""batches.dosing: pseudonymous patients, their weights and the versioned dosing regimens; dose
availability from released bags and projection from batches in progress."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register this part's permissions, views, API blueprints and demo data."""
    from app.shell import register_demo_data
    from batches.dosing import permissions  # noqa: F401  (declares the permissions)
    from app.shell import register_nav
    from batches.dosing import api as rest
    from batches.dosing import views
    from batches.dosing.demo import create_demo_data

    from batches.dosing.unit_state import dosing_state_of_unit
    from batches.quality.unit_states import register_unit_dosing_state

    register_unit_dosing_state(dosing_state_of_unit)  # the bag page shows whom a bag is held for
    app.register_blueprint(views.bp)
    register_nav("My patients", "dosing.patient_list", "patients.view", "Patients, weights and their regimen", 50)
    register_nav("Dose availability", "dosing.availability_page", "dose_availability.view",
                 "Is a dose available for a weight and protocol, and when", 51)
    register_nav("Dosing regimens", "dosing.regimen_list", "regimens.view", "Versioned dosing regimens", 52)
    for blp in rest.BLUEPRINTS:
        api.register_blueprint(blp)
    register_demo_data(create_demo_data)
