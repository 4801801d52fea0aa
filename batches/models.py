"""Every model of the batches package, imported here so that Alembic and the app see them all."""
