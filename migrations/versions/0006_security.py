"""role changes as e-signed records

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

import app.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_role_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('old_roles', sa.String(length=300), nullable=False),
    sa.Column('new_roles', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('changed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_user_role_change_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_role_change'))
    )
    with op.batch_alter_table('user_role_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_role_change_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_role_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_role_change_user_id'))
    op.drop_table('user_role_change')
