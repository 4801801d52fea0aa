"""Every model of the batches package, imported here so that Alembic and the app see them all."""
from batches.sourcing import models as sourcing_models  # noqa: F401
from batches.execution import models as execution_models  # noqa: F401
from batches.quality import models as quality_models  # noqa: F401
from batches.quality import notifications as quality_notifications  # noqa: F401
from batches.dosing import models as dosing_models  # noqa: F401
from batches.dosing import care_models as dosing_care_models  # noqa: F401
from batches.documents import models as documents_models  # noqa: F401
