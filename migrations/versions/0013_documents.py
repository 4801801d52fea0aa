"""documents: controlled documents (versions with SHA-256) and label prints, both append-only

Revision ID: 0013_documents
Revises: 0012_dosing_care
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0013_documents'
down_revision = '0012_dosing_care'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('controlled_document',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=80), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.CheckConstraint("kind IN ('batch_record', 'coa', 'label')", name=op.f('ck_controlled_document_kind_known')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_controlled_document_version_positive')),
    sa.CheckConstraint('length(sha256) = 64', name=op.f('ck_controlled_document_sha256_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_controlled_document')),
    sa.UniqueConstraint('kind', 'subject', 'version', name=op.f('uq_controlled_document_kind_subject_version'))
    )
    with op.batch_alter_table('controlled_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_controlled_document_subject'), ['subject'], unique=False)

    op.create_table('label_print',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label_kind', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=80), nullable=False),
    sa.Column('page_size', sa.String(length=20), nullable=False),
    sa.Column('reprint', sa.Boolean(), nullable=False),
    sa.Column('reprint_reason', sa.Text(), nullable=True),
    sa.Column('printed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('printed_by', sa.String(length=80), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.CheckConstraint("label_kind IN ('bag', 'cbu', 'sample')", name=op.f('ck_label_print_label_kind_known')),
    sa.CheckConstraint('reprint_reason IS NOT NULL OR NOT reprint', name=op.f('ck_label_print_reprint_has_reason')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_print'))
    )
    with op.batch_alter_table('label_print', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_print_identifier'), ['identifier'], unique=False)
    for table in ('controlled_document', 'label_print'):
        for statement in app.db.append_only_ddl(op.get_bind().dialect.name, table):
            op.execute(statement)


def downgrade() -> None:
    for table in ('label_print', 'controlled_document'):
        for statement in app.db.drop_append_only_ddl(op.get_bind().dialect.name, table):
            op.execute(statement)
    op.drop_table('label_print')
    op.drop_table('controlled_document')
