"""batches execution tables: recipes, materials, batches, steps, entries, exceptions, deviations

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import app.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('material',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_material')),
    sa.UniqueConstraint('code', name=op.f('uq_material_code'))
    )
    op.create_table('recipe',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('product', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('definition_sha256', sa.String(length=64), nullable=False),
    sa.Column('source_name', sa.String(length=200), nullable=True),
    sa.Column('change_summary', sa.Text(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('submitted_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=80), nullable=True),
    sa.Column('approval_note', sa.Text(), nullable=True),
    sa.Column('superseded_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'in_review', 'approved', 'superseded')", name=op.f('ck_recipe_status')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_recipe_version_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipe')),
    sa.UniqueConstraint('code', 'version', name=op.f('uq_recipe_code_version'))
    )
    with op.batch_alter_table('recipe', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recipe_code'), ['code'], unique=False)

    op.create_table('material_lot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('material_id', sa.Integer(), nullable=False),
    sa.Column('lot_number', sa.String(length=80), nullable=False),
    sa.Column('supplier', sa.String(length=200), nullable=True),
    sa.Column('expiry_date', sa.Date(), nullable=False),
    sa.Column('qc_status', sa.String(length=20), nullable=False),
    sa.Column('quantity_received', sa.Float(), nullable=False),
    sa.Column('quantity_remaining', sa.Float(), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('voided_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.String(length=80), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("qc_status IN ('quarantined', 'released', 'rejected')", name=op.f('ck_material_lot_qc_status')),
    sa.CheckConstraint('quantity_remaining >= 0', name=op.f('ck_material_lot_quantity_not_negative')),
    sa.ForeignKeyConstraint(['material_id'], ['material.id'], name=op.f('fk_material_lot_material_id_material')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_material_lot')),
    sa.UniqueConstraint('material_id', 'lot_number', name=op.f('uq_material_lot_material_id_lot_number'))
    )
    with op.batch_alter_table('material_lot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_material_lot_lot_number'), ['lot_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_material_lot_material_id'), ['material_id'], unique=False)

    op.create_table('batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_number', sa.String(length=40), nullable=False),
    sa.Column('recipe_id', sa.Integer(), nullable=False),
    sa.Column('cord_blood_unit_id', sa.Integer(), nullable=False),
    sa.Column('cord_blood_din', sa.String(length=20), nullable=False),
    sa.Column('exceptional_release', sa.Boolean(), nullable=False),
    sa.Column('product', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=80), nullable=False),
    sa.Column('completed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('planned', 'in_progress', 'on_hold', 'completed', 'in_review', 'released', 'rejected', 'aborted')", name=op.f('ck_batch_status')),
    sa.ForeignKeyConstraint(['cord_blood_unit_id'], ['cord_blood_unit.id'], name=op.f('fk_batch_cord_blood_unit_id_cord_blood_unit')),
    sa.ForeignKeyConstraint(['recipe_id'], ['recipe.id'], name=op.f('fk_batch_recipe_id_recipe')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch')),
    sa.UniqueConstraint('lot_number', name=op.f('uq_batch_lot_number'))
    )
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_cord_blood_unit_id'), ['cord_blood_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batch_recipe_id'), ['recipe_id'], unique=False)

    op.create_table('batch_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('phase_name', sa.String(length=200), nullable=False),
    sa.Column('step_key', sa.String(length=80), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('planned_day', sa.Float(), nullable=False),
    sa.Column('window_hours', sa.Float(), nullable=False),
    sa.Column('requires_verification', sa.Boolean(), nullable=False),
    sa.Column('any_order', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('entries_digest', sa.String(length=64), nullable=False),
    sa.Column('held_by_id', sa.Integer(), nullable=True),
    sa.Column('held_by', sa.String(length=80), nullable=True),
    sa.Column('held_since', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('performed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'in_progress', 'performed', 'complete')", name=op.f('ck_batch_step_status')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_batch_step_batch_id_batch')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_step')),
    sa.UniqueConstraint('batch_id', 'position', name=op.f('uq_batch_step_batch_id_position')),
    sa.UniqueConstraint('batch_id', 'step_key', name=op.f('uq_batch_step_batch_id_step_key'))
    )
    with op.batch_alter_table('batch_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_step_batch_id'), ['batch_id'], unique=False)

    op.create_table('equipment_occupancy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('entry_key', sa.String(length=80), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('asset_code', sa.String(length=80), nullable=False),
    sa.Column('usage_id', sa.Integer(), nullable=True),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_equipment_occupancy_batch_id_batch')),
    sa.ForeignKeyConstraint(['step_id'], ['batch_step.id'], name=op.f('fk_equipment_occupancy_step_id_batch_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_occupancy'))
    )
    with op.batch_alter_table('equipment_occupancy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_occupancy_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_equipment_occupancy_batch_id'), ['batch_id'], unique=False)

    op.create_table('step_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('entry_key', sa.String(length=80), nullable=False),
    sa.Column('entry_type', sa.String(length=20), nullable=False),
    sa.Column('value_text', sa.Text(), nullable=False),
    sa.Column('value_number', sa.Float(), nullable=True),
    sa.Column('unit', sa.String(length=20), nullable=True),
    sa.Column('limit_class', sa.String(length=10), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('material_lot_id', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.Float(), nullable=True),
    sa.Column('asset_code', sa.String(length=80), nullable=True),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('occurred_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('replaces_id', sa.Integer(), nullable=True),
    sa.Column('voided_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.String(length=80), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("limit_class IN ('green', 'amber', 'red', 'none')", name=op.f('ck_step_entry_limit_class')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_step_entry_batch_id_batch')),
    sa.ForeignKeyConstraint(['material_lot_id'], ['material_lot.id'], name=op.f('fk_step_entry_material_lot_id_material_lot')),
    sa.ForeignKeyConstraint(['replaces_id'], ['step_entry.id'], name=op.f('fk_step_entry_replaces_id_step_entry')),
    sa.ForeignKeyConstraint(['step_id'], ['batch_step.id'], name=op.f('fk_step_entry_step_id_batch_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_entry'))
    )
    with op.batch_alter_table('step_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_step_entry_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_step_entry_step_id'), ['step_id'], unique=False)

    op.create_table('deviation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('classification', sa.String(length=20), nullable=True),
    sa.Column('impact_assessment', sa.Text(), nullable=True),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('opened_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=80), nullable=False),
    sa.Column('closed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("classification IS NULL OR classification IN ('minor', 'major', 'critical')", name=op.f('ck_deviation_classification')),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_deviation_status')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_deviation_batch_id_batch')),
    sa.ForeignKeyConstraint(['entry_id'], ['step_entry.id'], name=op.f('fk_deviation_entry_id_step_entry')),
    sa.ForeignKeyConstraint(['step_id'], ['batch_step.id'], name=op.f('fk_deviation_step_id_batch_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deviation')),
    sa.UniqueConstraint('number', name=op.f('uq_deviation_number'))
    )
    with op.batch_alter_table('deviation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deviation_batch_id'), ['batch_id'], unique=False)

    op.create_table('material_usage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('material_lot_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('used_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_by', sa.String(length=80), nullable=False),
    sa.Column('voided_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.String(length=80), nullable=True),
    sa.Column('void_reason', sa.Text(), nullable=True),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_material_usage_quantity_positive')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_material_usage_batch_id_batch')),
    sa.ForeignKeyConstraint(['entry_id'], ['step_entry.id'], name=op.f('fk_material_usage_entry_id_step_entry')),
    sa.ForeignKeyConstraint(['material_lot_id'], ['material_lot.id'], name=op.f('fk_material_usage_material_lot_id_material_lot')),
    sa.ForeignKeyConstraint(['step_id'], ['batch_step.id'], name=op.f('fk_material_usage_step_id_batch_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_material_usage'))
    )
    with op.batch_alter_table('material_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_material_usage_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_material_usage_material_lot_id'), ['material_lot_id'], unique=False)

    op.create_table('batch_exception',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('source_table', sa.String(length=80), nullable=False),
    sa.Column('source_id', sa.String(length=80), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('occurred_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('raised_by', sa.String(length=80), nullable=False),
    sa.Column('deviation_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=80), nullable=True),
    sa.Column('review_comment', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('out_of_limit', 'correction', 'out_of_order', 'late', 'scan_override', 'alarm', 'telemetry_gap', 'comment')", name=op.f('ck_batch_exception_kind')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_batch_exception_batch_id_batch')),
    sa.ForeignKeyConstraint(['deviation_id'], ['deviation.id'], name=op.f('fk_batch_exception_deviation_id_deviation')),
    sa.ForeignKeyConstraint(['step_id'], ['batch_step.id'], name=op.f('fk_batch_exception_step_id_batch_step')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_exception')),
    sa.UniqueConstraint('batch_id', 'kind', 'source_table', 'source_id', name=op.f('uq_batch_exception_batch_id_kind_source_table_source_id'))
    )
    with op.batch_alter_table('batch_exception', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_exception_batch_id'), ['batch_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('batch_exception', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_exception_batch_id'))

    op.drop_table('batch_exception')
    with op.batch_alter_table('material_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_material_usage_material_lot_id'))
        batch_op.drop_index(batch_op.f('ix_material_usage_batch_id'))

    op.drop_table('material_usage')
    with op.batch_alter_table('deviation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deviation_batch_id'))

    op.drop_table('deviation')
    with op.batch_alter_table('step_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_entry_step_id'))
        batch_op.drop_index(batch_op.f('ix_step_entry_batch_id'))

    op.drop_table('step_entry')
    with op.batch_alter_table('equipment_occupancy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_occupancy_batch_id'))
        batch_op.drop_index(batch_op.f('ix_equipment_occupancy_asset_id'))

    op.drop_table('equipment_occupancy')
    with op.batch_alter_table('batch_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_step_batch_id'))

    op.drop_table('batch_step')
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_recipe_id'))
        batch_op.drop_index(batch_op.f('ix_batch_cord_blood_unit_id'))

    op.drop_table('batch')
    with op.batch_alter_table('material_lot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_material_lot_material_id'))
        batch_op.drop_index(batch_op.f('ix_material_lot_lot_number'))

    op.drop_table('material_lot')
    with op.batch_alter_table('recipe', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recipe_code'))

    op.drop_table('recipe')
    op.drop_table('material')
