"""one cord blood unit per storage position

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEX_NAME = 'uq_cord_blood_unit_storage_position'
POSITION_COLUMNS = ['storage_freezer', 'storage_rack', 'storage_box', 'storage_slot']
OCCUPIES_POSITION = 'storage_slot IS NOT NULL'


def _shared_positions(connection: sa.engine.Connection) -> list[str]:
    """Positions that more than one unit already occupies, with the units' DINs, one line each."""
    rows = connection.execute(sa.text(
        "SELECT storage_freezer, storage_rack, storage_box, storage_slot, din FROM cord_blood_unit "
        f"WHERE {OCCUPIES_POSITION} AND (storage_freezer, storage_rack, storage_box, storage_slot) IN ("
        "  SELECT storage_freezer, storage_rack, storage_box, storage_slot FROM cord_blood_unit"
        f"  WHERE {OCCUPIES_POSITION}"
        "  GROUP BY storage_freezer, storage_rack, storage_box, storage_slot HAVING count(*) > 1)"
        " ORDER BY storage_freezer, storage_rack, storage_box, storage_slot, din")).all()
    shared: dict[tuple, list[str]] = {}
    for freezer, rack, box, slot, din in rows:
        shared.setdefault((freezer, rack, box, slot), []).append(din)
    return [f"{freezer} / rack {rack} / box {box} / slot {slot}: units {', '.join(dins)}"
            for (freezer, rack, box, slot), dins in shared.items()]


def upgrade() -> None:
    # Records are never changed silently to fit a constraint: if units already share a position, stop
    # and say which, so the storage records can be corrected through custody moves, then upgrade again.
    shared = _shared_positions(op.get_bind())
    if shared:
        raise RuntimeError(
            "Cannot add the one-unit-per-storage-position rule: these storage positions hold more than one "
            "cord blood unit. Check the freezers, record the correct positions with custody moves (remove "
            "and return), then run the upgrade again. Nothing was changed.\n" + "\n".join(shared))
    op.create_index(INDEX_NAME, 'cord_blood_unit', POSITION_COLUMNS, unique=True,
                    sqlite_where=sa.text(OCCUPIES_POSITION), postgresql_where=sa.text(OCCUPIES_POSITION))


def downgrade() -> None:
    op.drop_index(INDEX_NAME, table_name='cord_blood_unit')
