"""Every model of the equipment package, imported here so that Alembic and the app see them all."""
