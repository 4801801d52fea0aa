"""Who may do what with specifications and final product units (declared once, at import)."""
from app.permissions import ALL_ROLES, define_permissions, define_record_views

READERS = {"operator", "supervisor", "qa", "qc_analyst"}

define_permissions({
    "inbox.view": (ALL_ROLES, "Read and acknowledge one's own notifications"),
    "specifications.view": (READERS, "See release specifications and their versions"),
    "specifications.author": ({"qa"}, "Write specification drafts and new versions, send them for review"),
    "specifications.approve": ({"qa"}, "Approve a specification version with an e-signature"),
    "product_units.view": (READERS | {"clinician"}, "See infusion bags, their status and chain of identity"),
    "product_units.store": ({"operator", "supervisor", "qa"}, "Record where an infusion bag is stored"),
    "lots.view": (READERS, "See lots under QC testing and their disposition"),
    "qc.enter_results": ({"qc_analyst"}, "Draw samples, enter and import QC results, record retests"),
    "qc.review_results": ({"qc_analyst"}, "Review and sign another analyst's QC results"),
    "oos.investigate": ({"qc_analyst", "qa"}, "Record OOS investigation phases and invalidate a result"),
    "oos.close": ({"qa"}, "Close an OOS investigation with an e-signature"),
    "lots.review": ({"qa"}, "Review a lot by exception"),
    "lots.dispose": ({"qa"}, "Release, conditionally release or reject a lot with an e-signature"),
})

define_record_views({
    "specification": "specifications.view", "final_product_unit": "product_units.view",
    **{table: "lots.view" for table in ("quality_lot", "qc_sample", "qc_result", "oos_investigation",
                                        "lot_disposition", "instrument_file")},
})
