"""equipment tables

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import app.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('equipment_asset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('asset_type', sa.String(length=40), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('endpoint_url', sa.String(length=300), nullable=True),
    sa.Column('security_policy', sa.String(length=40), nullable=False),
    sa.Column('security_mode', sa.String(length=20), nullable=False),
    sa.Column('opc_username', sa.String(length=120), nullable=True),
    sa.Column('opc_password_encrypted', sa.Text(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(security_policy = 'None') = (security_mode = 'None')", name=op.f('ck_equipment_asset_security_policy_mode_match')),
    sa.CheckConstraint("asset_type IN ('co2_incubator', 'rocking_bioreactor', 'stirred_bioreactor', 'biosafety_cabinet', 'ln2_freezer', 'dry_shipper', 'centrifuge', 'cell_counter', 'flow_cytometer', 'controlled_rate_freezer', 'water_bath')", name=op.f('ck_equipment_asset_asset_type_known')),
    sa.CheckConstraint("security_mode IN ('None', 'Sign', 'SignAndEncrypt')", name=op.f('ck_equipment_asset_security_mode_known')),
    sa.CheckConstraint("security_policy IN ('None', 'Basic256Sha256')", name=op.f('ck_equipment_asset_security_policy_known')),
    sa.CheckConstraint("status IN ('available', 'in_use', 'cleaning', 'out_of_service')", name=op.f('ck_equipment_asset_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_asset')),
    sa.UniqueConstraint('code', name=op.f('uq_equipment_asset_code'))
    )
    op.create_table('equipment_service_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('performed_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('result', sa.String(length=10), nullable=False),
    sa.Column('performed_by', sa.String(length=200), nullable=False),
    sa.Column('certificate_ref', sa.String(length=200), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('voided_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.String(length=80), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('calibration', 'maintenance')", name=op.f('ck_equipment_service_record_kind_known')),
    sa.CheckConstraint("result IN ('pass', 'fail')", name=op.f('ck_equipment_service_record_result_known')),
    sa.CheckConstraint('due_on > performed_on', name=op.f('ck_equipment_service_record_due_after_performed')),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_equipment_service_record_asset_id_equipment_asset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_service_record'))
    )
    with op.batch_alter_table('equipment_service_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_service_record_asset_id'), ['asset_id'], unique=False)

    op.create_table('equipment_tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.String(length=300), nullable=False),
    sa.Column('parameter', sa.String(length=80), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('low_limit', sa.Float(), nullable=True),
    sa.Column('high_limit', sa.Float(), nullable=True),
    sa.Column('on_delay_s', sa.Float(), nullable=False),
    sa.Column('off_delay_s', sa.Float(), nullable=False),
    sa.Column('deadband', sa.Float(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('low_limit IS NULL OR high_limit IS NULL OR low_limit < high_limit', name=op.f('ck_equipment_tag_limits_ordered')),
    sa.CheckConstraint('on_delay_s >= 0 AND off_delay_s >= 0 AND deadband >= 0', name=op.f('ck_equipment_tag_alarm_settings_positive')),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_equipment_tag_asset_id_equipment_asset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_tag')),
    sa.UniqueConstraint('asset_id', 'node_id', name=op.f('uq_equipment_tag_asset_id_node_id')),
    sa.UniqueConstraint('asset_id', 'parameter', name=op.f('uq_equipment_tag_asset_id_parameter'))
    )
    with op.batch_alter_table('equipment_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_tag_asset_id'), ['asset_id'], unique=False)

    op.create_table('equipment_usage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('record_type', sa.String(length=60), nullable=False),
    sa.Column('record_id', sa.String(length=80), nullable=False),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_by', sa.String(length=80), nullable=False),
    sa.CheckConstraint('ended_at IS NULL OR ended_at >= started_at', name=op.f('ck_equipment_usage_ends_after_start')),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_equipment_usage_asset_id_equipment_asset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_usage'))
    )
    with op.batch_alter_table('equipment_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_usage_asset_id'), ['asset_id'], unique=False)

    op.create_table('equipment_alarm',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('parameter', sa.String(length=80), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('limit_kind', sa.String(length=10), nullable=False),
    sa.Column('limit_value', sa.Float(), nullable=False),
    sa.Column('excursion_started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('raised_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('cleared_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('peak_value', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('acknowledged_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=80), nullable=True),
    sa.Column('ack_comment', sa.Text(), nullable=True),
    sa.Column('shelved_until', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('shelved_by', sa.String(length=80), nullable=True),
    sa.Column('shelve_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("limit_kind IN ('high', 'low')", name=op.f('ck_equipment_alarm_limit_kind_known')),
    sa.CheckConstraint("state IN ('active', 'acknowledged', 'returned', 'cleared')", name=op.f('ck_equipment_alarm_state_known')),
    sa.CheckConstraint('cleared_at IS NULL OR cleared_at >= raised_at', name=op.f('ck_equipment_alarm_clears_after_raise')),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_equipment_alarm_asset_id_equipment_asset')),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_equipment_alarm_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_alarm'))
    )
    with op.batch_alter_table('equipment_alarm', schema=None) as batch_op:
        batch_op.create_index('ix_equipment_alarm_asset_window', ['asset_id', 'raised_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_equipment_alarm_tag_id'), ['tag_id'], unique=False)

    op.create_table('telemetry_gap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=True),
    sa.Column('cause', sa.String(length=30), nullable=False),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.CheckConstraint("cause IN ('connection_lost', 'server_restart', 'missed_sequence', 'stale_subscription', 'bad_quality', 'collector_restart')", name=op.f('ck_telemetry_gap_cause_known')),
    sa.CheckConstraint('ended_at IS NULL OR ended_at >= started_at', name=op.f('ck_telemetry_gap_ends_after_start')),
    sa.ForeignKeyConstraint(['asset_id'], ['equipment_asset.id'], name=op.f('fk_telemetry_gap_asset_id_equipment_asset')),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_telemetry_gap_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry_gap'))
    )
    with op.batch_alter_table('telemetry_gap', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_gap_asset_window', ['asset_id', 'started_at'], unique=False)

    op.create_table('telemetry_rollup',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('minute', sa.BigInteger(), nullable=False),
    sa.Column('min_value', sa.Float(), nullable=False),
    sa.Column('max_value', sa.Float(), nullable=False),
    sa.Column('mean_value', sa.Float(), nullable=False),
    sa.Column('sample_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_telemetry_rollup_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('tag_id', 'minute', name=op.f('pk_telemetry_rollup')),
    sqlite_with_rowid=False,
    )
    op.create_table('telemetry_sample',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('source_us', sa.BigInteger(), nullable=False),
    sa.Column('server_us', sa.BigInteger(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('status_code', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_telemetry_sample_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('tag_id', 'source_us', name=op.f('pk_telemetry_sample')),
    sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table('telemetry_sample')
    op.drop_table('telemetry_rollup')
    with op.batch_alter_table('telemetry_gap', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_gap_asset_window')

    op.drop_table('telemetry_gap')
    with op.batch_alter_table('equipment_alarm', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_alarm_tag_id'))
        batch_op.drop_index('ix_equipment_alarm_asset_window')

    op.drop_table('equipment_alarm')
    with op.batch_alter_table('equipment_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_usage_asset_id'))

    op.drop_table('equipment_usage')
    with op.batch_alter_table('equipment_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_tag_asset_id'))

    op.drop_table('equipment_tag')
    with op.batch_alter_table('equipment_service_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_service_record_asset_id'))

    op.drop_table('equipment_service_record')
    op.drop_table('equipment_asset')
