"""Who may do what with specifications and final product units (declared once, at import)."""
from app.permissions import define_permissions

READERS = {"operator", "supervisor", "qa", "qc_analyst"}

define_permissions({
    "specifications.view": (READERS, "See release specifications and their versions"),
    "specifications.author": ({"qa"}, "Write specification drafts and new versions, send them for review"),
    "specifications.approve": ({"qa"}, "Approve a specification version with an e-signature"),
    "product_units.view": (READERS | {"clinician"}, "See infusion bags, their status and chain of identity"),
    "product_units.store": ({"operator", "supervisor", "qa"}, "Record where an infusion bag is stored"),
    "lots.view": (READERS, "See lots under QC testing and their disposition"),
})
