"""telemetry: which clock a sample's time came from, connection heartbeat, subscription intervals, asset capacity

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('telemetry_sample', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_source', sa.SmallInteger(), server_default='0', nullable=False))
    # OPC UA's null DateTime (1601-01-01) was stored as a server time: it means "no server time"
    op.execute("UPDATE telemetry_sample SET server_us = NULL WHERE server_us <= -11644473600000000")
    with op.batch_alter_table('equipment_asset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capacity', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_check_constraint('capacity_range', 'capacity >= 1 AND capacity <= 100')
    op.create_table('telemetry_link',
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('alive_us', sa.BigInteger(), nullable=False),
    sa.Column('server_offset_us', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_telemetry_link_asset_id_equipment_asset')),
    sa.PrimaryKeyConstraint('asset_id', name=op.f('pk_telemetry_link')),
    )
    op.create_table('telemetry_subscription',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('subscribed_us', sa.BigInteger(), nullable=False),
    sa.Column('requested_sampling_ms', sa.Float(), nullable=False),
    sa.Column('revised_sampling_ms', sa.Float(), nullable=True),
    sa.Column('requested_publishing_ms', sa.Float(), nullable=False),
    sa.Column('revised_publishing_ms', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=120), nullable=True),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_telemetry_subscription_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('tag_id', name=op.f('pk_telemetry_subscription')),
    )


def downgrade() -> None:
    op.drop_table('telemetry_subscription')
    op.drop_table('telemetry_link')
    with op.batch_alter_table('equipment_asset', schema=None) as batch_op:
        batch_op.drop_constraint('capacity_range', type_='check')
        batch_op.drop_column('capacity')
    with op.batch_alter_table('telemetry_sample', schema=None) as batch_op:
        batch_op.drop_column('time_source')
