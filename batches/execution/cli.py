"""`flask recipes ...`: install the shipped recipes, load a recipe file as a draft."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from app import db
from app.audit import Actor, acting_as
from app.errors import DomainError

recipes_cli = AppGroup("recipes", help="Master batch records (recipes).")


@recipes_cli.command("install-seed")
def install_seed() -> None:
    """Install the shipped MsNK and NKG2D-CAR-NK recipes as approved (skips codes that exist)."""
    from batches.execution.recipes import install_seed_recipes

    with acting_as(Actor(None, "cli:recipes")):
        installed = install_seed_recipes(db.session)
        db.session.commit()
    click.echo(", ".join(r.label for r in installed) or "seed recipes already installed")


@recipes_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--change-summary", default=None, help="What changed (required for a new version).")
def load(path: Path, change_summary: str | None) -> None:
    """Load a recipe file (TOML) as a draft for QA review."""
    from batches.execution.recipes import create_recipe_draft

    with acting_as(Actor(None, "cli:recipes")):
        try:
            recipe = create_recipe_draft(db.session, path.read_text(encoding="utf-8"), source_name=path.name,
                                         change_summary=change_summary)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None
    click.echo(f"{recipe.label} loaded as a draft")
