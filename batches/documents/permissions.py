"""Who may print labels and read controlled documents (declared once, at import)."""
from app.permissions import define_permissions, define_record_views

READERS = {"operator", "supervisor", "qa", "qc_analyst"}

define_permissions({
    "labels.print": ({"operator", "supervisor", "qa", "qc_analyst"}, "Print and reprint bag, cord blood unit and sample labels"),
    "documents.view": (READERS, "Download certificates of analysis and other controlled documents"),
})

define_record_views({"controlled_document": "documents.view", "label_print": "labels.print"})
