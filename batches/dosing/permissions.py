"""Who may do what with patients, weights, regimens and dose availability (declared once, at import)."""
from app.permissions import define_permissions, define_record_views

CARE = {"clinician", "pharmacist", "qa"}

define_permissions({
    "patients.view": (CARE, "See patients (clinicians their own; pharmacists and QA all)"),
    "patients.register": ({"clinician"}, "Register a pseudonymous patient"),
    "patients.record_weight": (CARE - {"qa"}, "Record a patient's weight"),
    "regimens.view": (CARE | {"supervisor"}, "See dosing regimens and their versions"),
    "regimens.author": ({"qa"}, "Write dosing regimen drafts and new versions, send them for review"),
    "regimens.approve": ({"qa"}, "Approve a dosing regimen version with an e-signature"),
    "dose_availability.view": (CARE, "Ask which lots and bags can supply a dose"),
})

define_record_views({"patient": "patients.view", "patient_weight": "patients.view",
                     "dosing_regimen": "regimens.view"})
