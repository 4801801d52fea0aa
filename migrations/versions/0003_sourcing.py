"""sourcing tables: cord blood units, acceptance criteria versions, criterion results, custody events,
exceptional releases

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import app.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cbu_acceptance_criteria',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('min_tnc_cells', sa.Float(), nullable=False),
    sa.Column('min_cd34_cells', sa.Float(), nullable=False),
    sa.Column('min_viability_percent', sa.Float(), nullable=False),
    sa.Column('max_shipper_temperature_c', sa.Float(), nullable=False),
    sa.Column('max_collection_age_days', sa.Integer(), nullable=False),
    sa.Column('required_markers', sa.Text(), nullable=False),
    sa.Column('change_description', sa.Text(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('approved_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=80), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'approved')", name=op.f('ck_cbu_acceptance_criteria_status_known')),
    sa.CheckConstraint('max_collection_age_days > 0', name=op.f('ck_cbu_acceptance_criteria_age_positive')),
    sa.CheckConstraint('min_tnc_cells > 0 AND min_cd34_cells > 0', name=op.f('ck_cbu_acceptance_criteria_counts_positive')),
    sa.CheckConstraint('min_viability_percent >= 0 AND min_viability_percent <= 100', name=op.f('ck_cbu_acceptance_criteria_viability_percent')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cbu_acceptance_criteria')),
    sa.UniqueConstraint('version', name=op.f('uq_cbu_acceptance_criteria_version'))
    )
    with op.batch_alter_table('cbu_acceptance_criteria', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cbu_acceptance_criteria_approved_at'), ['approved_at'], unique=False)

    op.create_table('cord_blood_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('din', sa.String(length=13), nullable=False),
    sa.Column('product_code', sa.String(length=8), nullable=False),
    sa.Column('source_bank', sa.String(length=200), nullable=False),
    sa.Column('collection_date', sa.Date(), nullable=False),
    sa.Column('volume_ml', sa.Float(), nullable=False),
    sa.Column('tnc_cells', sa.Float(), nullable=False),
    sa.Column('cd34_cells', sa.Float(), nullable=False),
    sa.Column('viability_percent', sa.Float(), nullable=False),
    sa.Column('abo_rh', sa.String(length=3), nullable=False),
    sa.Column('hla_a', sa.String(length=60), nullable=False),
    sa.Column('hla_b', sa.String(length=60), nullable=False),
    sa.Column('hla_drb1', sa.String(length=60), nullable=False),
    sa.Column('marker_hiv_ab', sa.String(length=12), nullable=False),
    sa.Column('marker_hiv_nat', sa.String(length=12), nullable=False),
    sa.Column('marker_hbsag', sa.String(length=12), nullable=False),
    sa.Column('marker_anti_hbc', sa.String(length=12), nullable=False),
    sa.Column('marker_hcv_ab', sa.String(length=12), nullable=False),
    sa.Column('marker_hcv_nat', sa.String(length=12), nullable=False),
    sa.Column('marker_syphilis', sa.String(length=12), nullable=False),
    sa.Column('marker_htlv', sa.String(length=12), nullable=False),
    sa.Column('marker_cmv', sa.String(length=12), nullable=False),
    sa.Column('maternal_sample_date', sa.Date(), nullable=False),
    sa.Column('eligibility', sa.String(length=12), nullable=False),
    sa.Column('eligibility_reasons', sa.Text(), nullable=False),
    sa.Column('shipper_temperature_c', sa.Float(), nullable=False),
    sa.Column('data_logger_reviewed', sa.Boolean(), nullable=False),
    sa.Column('seal_intact', sa.Boolean(), nullable=False),
    sa.Column('received_by', sa.String(length=80), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('recorded_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('criteria_id', sa.Integer(), nullable=False),
    sa.Column('criteria_passed', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('custody_state', sa.String(length=20), nullable=False),
    sa.Column('storage_freezer', sa.String(length=40), nullable=True),
    sa.Column('storage_rack', sa.String(length=20), nullable=True),
    sa.Column('storage_box', sa.String(length=20), nullable=True),
    sa.Column('storage_slot', sa.String(length=20), nullable=True),
    sa.Column('batch_lot_number', sa.String(length=40), nullable=True),
    sa.Column('exceptional_release', sa.Boolean(), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("custody_state <> 'issued' OR batch_lot_number IS NOT NULL", name=op.f('ck_cord_blood_unit_issued_has_batch')),
    sa.CheckConstraint("custody_state IN ('in_storage', 'removed', 'issued', 'disposed')", name=op.f('ck_cord_blood_unit_custody_state_known')),
    sa.CheckConstraint("eligibility IN ('eligible', 'ineligible', 'incomplete')", name=op.f('ck_cord_blood_unit_eligibility_known')),
    sa.CheckConstraint("marker_anti_hbc IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_anti_hbc_known')),
    sa.CheckConstraint("marker_cmv IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_cmv_known')),
    sa.CheckConstraint("marker_hbsag IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_hbsag_known')),
    sa.CheckConstraint("marker_hcv_ab IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_hcv_ab_known')),
    sa.CheckConstraint("marker_hcv_nat IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_hcv_nat_known')),
    sa.CheckConstraint("marker_hiv_ab IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_hiv_ab_known')),
    sa.CheckConstraint("marker_hiv_nat IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_hiv_nat_known')),
    sa.CheckConstraint("marker_htlv IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_htlv_known')),
    sa.CheckConstraint("marker_syphilis IN ('non_reactive', 'reactive', 'not_done')", name=op.f('ck_cord_blood_unit_marker_syphilis_known')),
    sa.CheckConstraint("status <> 'accepted' OR eligibility = 'eligible' OR exceptional_release", name=op.f('ck_cord_blood_unit_ineligible_needs_exceptional_release')),
    sa.CheckConstraint("status IN ('received', 'quarantine', 'accepted', 'rejected')", name=op.f('ck_cord_blood_unit_status_known')),
    sa.CheckConstraint('length(din) = 13', name=op.f('ck_cord_blood_unit_din_length')),
    sa.CheckConstraint('viability_percent >= 0 AND viability_percent <= 100', name=op.f('ck_cord_blood_unit_viability_percent')),
    sa.CheckConstraint('volume_ml > 0 AND tnc_cells > 0 AND cd34_cells > 0', name=op.f('ck_cord_blood_unit_amounts_positive')),
    sa.ForeignKeyConstraint(['criteria_id'], ['cbu_acceptance_criteria.id'], name=op.f('fk_cord_blood_unit_criteria_id_cbu_acceptance_criteria')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cord_blood_unit')),
    sa.UniqueConstraint('din', name=op.f('uq_cord_blood_unit_din'))
    )
    with op.batch_alter_table('cord_blood_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_batch_lot_number'), ['batch_lot_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_criteria_id'), ['criteria_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_custody_state'), ['custody_state'], unique=False)
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_source_bank'), ['source_bank'], unique=False)
        batch_op.create_index(batch_op.f('ix_cord_blood_unit_status'), ['status'], unique=False)

    op.create_table('cbu_criterion_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('criteria_id', sa.Integer(), nullable=False),
    sa.Column('criterion', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('requirement', sa.String(length=200), nullable=False),
    sa.Column('actual', sa.String(length=200), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['criteria_id'], ['cbu_acceptance_criteria.id'], name=op.f('fk_cbu_criterion_result_criteria_id_cbu_acceptance_criteria')),
    sa.ForeignKeyConstraint(['unit_id'], ['cord_blood_unit.id'], name=op.f('fk_cbu_criterion_result_unit_id_cord_blood_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cbu_criterion_result'))
    )
    with op.batch_alter_table('cbu_criterion_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cbu_criterion_result_unit_id'), ['unit_id'], unique=False)

    op.create_table('cbu_custody_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('performed_by', sa.String(length=80), nullable=False),
    sa.Column('from_location', sa.String(length=200), nullable=False),
    sa.Column('to_location', sa.String(length=200), nullable=False),
    sa.Column('batch_lot_number', sa.String(length=40), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.CheckConstraint("event_type IN ('receipt', 'storage', 'removal', 'return', 'thaw', 'disposal')", name=op.f('ck_cbu_custody_event_event_type_known')),
    sa.ForeignKeyConstraint(['unit_id'], ['cord_blood_unit.id'], name=op.f('fk_cbu_custody_event_unit_id_cord_blood_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cbu_custody_event'))
    )
    with op.batch_alter_table('cbu_custody_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cbu_custody_event_unit_id'), ['unit_id'], unique=False)

    op.create_table('cbu_exceptional_release',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('justification', sa.Text(), nullable=False),
    sa.Column('requested_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_by', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('completed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.String(length=80), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'completed')", name=op.f('ck_cbu_exceptional_release_status_known')),
    sa.ForeignKeyConstraint(['unit_id'], ['cord_blood_unit.id'], name=op.f('fk_cbu_exceptional_release_unit_id_cord_blood_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cbu_exceptional_release'))
    )
    with op.batch_alter_table('cbu_exceptional_release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cbu_exceptional_release_unit_id'), ['unit_id'], unique=False)
    for statement in app.db.append_only_ddl(op.get_bind().dialect.name, "cbu_custody_event"):
        op.execute(statement)


def downgrade() -> None:
    for statement in app.db.drop_append_only_ddl(op.get_bind().dialect.name, "cbu_custody_event"):
        op.execute(statement)
    op.drop_table('cbu_exceptional_release')
    op.drop_table('cbu_custody_event')
    op.drop_table('cbu_criterion_result')
    op.drop_table('cord_blood_unit')
    op.drop_table('cbu_acceptance_criteria')
