"""shop floor: steps are taken (not held), early steps are exceptions, QA review decisions are signed

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

import app.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OLD_KINDS = ('out_of_limit', 'correction', 'out_of_order', 'late', 'scan_override', 'alarm', 'telemetry_gap',
             'comment')
NEW_KINDS = OLD_KINDS + ('early',)
RENAMES = [('held_by_id', 'taken_by_id'), ('held_by', 'taken_by'), ('held_since', 'taken_since')]


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def upgrade() -> None:
    with op.batch_alter_table('batch_step', schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(old, new_column_name=new)
    op.create_table('exception_review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('covered', sa.Text(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('reviewed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reviewed_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_exception_review_batch_id_batch')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exception_review'))
    )
    with op.batch_alter_table('exception_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exception_review_batch_id'), ['batch_id'], unique=False)
    with op.batch_alter_table('batch_exception', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_batch_exception_review_id_exception_review'), 'exception_review',
                                    ['review_id'], ['id'])
        batch_op.drop_constraint(batch_op.f('ck_batch_exception_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_batch_exception_kind'), _kinds(NEW_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('batch_exception', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_batch_exception_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_batch_exception_kind'), _kinds(OLD_KINDS))
        batch_op.drop_constraint(batch_op.f('fk_batch_exception_review_id_exception_review'), type_='foreignkey')
        batch_op.drop_column('review_id')
    with op.batch_alter_table('exception_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exception_review_batch_id'))
    op.drop_table('exception_review')
    with op.batch_alter_table('batch_step', schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(new, new_column_name=old)
