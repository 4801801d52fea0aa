"""Who may do what with recipes, materials, batches and deviations (declared once, at import)."""
from app.permissions import define_permissions, define_record_views

SHOP_FLOOR = {"operator", "supervisor"}
READERS = {"operator", "supervisor", "qa", "qc_analyst"}

define_permissions({
    "recipes.view": (READERS, "See master batch records (recipes) and their versions"),
    "recipes.author": ({"supervisor", "qa"}, "Write recipe drafts and new versions, send them for review"),
    "recipes.approve": ({"qa"}, "Approve a recipe version with an e-signature"),
    "materials.view": (READERS, "See the materials inventory"),
    "materials.manage": ({"supervisor", "qa"}, "Add materials and receive lots (quarantined)"),
    "materials.qc_status": ({"qc_analyst", "qa"}, "Release, reject or quarantine a material lot with an e-signature"),
    "batches.view": (READERS, "See batch records, their exceptions and growth curves"),
    "batches.start": ({"supervisor"}, "Start a batch from an accepted cord blood unit"),
    "batches.execute": (SHOP_FLOOR, "Execute steps: record entries, sign performed or verified, correct"),
    "batches.override_scan": ({"supervisor"}, "Accept a refused material or equipment scan, with a reason"),
    "batches.hold": ({"supervisor", "qa"}, "Put a batch on hold and resume it"),
    "batches.submit_review": ({"supervisor"}, "Send a completed batch record to QA review"),
    "batches.abort": ({"qa"}, "Abort a batch with a reason and a QA signature"),
    "batches.review_exceptions": ({"qa"}, "Mark batch exceptions as reviewed"),
    "deviations.view": (READERS, "See deviations"),
    "deviations.open": ({"operator", "supervisor", "qa", "qc_analyst"}, "Open a deviation"),
    "deviations.manage": ({"qa"}, "Classify, assess and close deviations with a QA signature"),
})

define_record_views({
    "recipe": "recipes.view", "material": "materials.view", "material_lot": "materials.view",
    "deviation": "deviations.view",
    **{table: "batches.view" for table in ("batch", "batch_step", "step_entry", "material_usage",
                                           "equipment_occupancy", "batch_exception",
                                           "exception_review")},
})
