"""Who may do what in dosing care (declared once, at import)."""
from app.permissions import define_permissions, define_record_views

define_permissions({
    "care.view": ({"clinician", "pharmacist", "qa"}, "See patients' reservations, infusions, follow-up and the chain of identity"),
    "care.reserve": ({"clinician"}, "Reserve bags for a patient's infusion with an e-signature, release a reservation"),
    "care.issue": ({"pharmacist"}, "Issue reserved bags from the pharmacy to the ward"),
    "care.infuse": ({"clinician"}, "Check bag and wristband at the bedside, record an infusion with two signatures"),
    "care.follow_up": ({"clinician"}, "Record follow-up visits and adverse events"),
})

define_record_views({table: "care.view" for table in ("dose_reservation", "reserved_bag", "bag_custody_event",
                                                      "infusion", "follow_up_visit", "adverse_event")})
