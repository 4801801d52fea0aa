"""telemetry chunks: older samples compressed per tag and hour, the clock each sample's time came
from, and database triggers that refuse deleting telemetry a batch's occupancy of the asset covers

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

REFUSAL = 'telemetry referenced by an occupancy of the asset (a batch record) cannot be deleted'

PG_FUNCTIONS = f"""
CREATE FUNCTION telemetry_chunk_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows o JOIN equipment_tag t ON t.id = o.tag_id
             JOIN equipment_usage u ON u.asset_id = t.asset_id
             WHERE u.started_at < to_timestamp(0) + o.end_us * interval '1 microsecond'
               AND (u.ended_at IS NULL OR u.ended_at >= to_timestamp(0) + o.start_us * interval '1 microsecond')) THEN
    RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION telemetry_sample_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- a row may leave the table for a chunk that covers its time (compaction), never otherwise
  IF EXISTS (SELECT 1 FROM old_rows o JOIN equipment_tag t ON t.id = o.tag_id
             JOIN equipment_usage u ON u.asset_id = t.asset_id
             WHERE u.started_at <= to_timestamp(0) + o.source_us * interval '1 microsecond'
               AND (u.ended_at IS NULL OR u.ended_at >= to_timestamp(0) + o.source_us * interval '1 microsecond')
               AND NOT EXISTS (SELECT 1 FROM telemetry_chunk c WHERE c.tag_id = o.tag_id
                               AND c.start_us <= o.source_us AND c.start_us > o.source_us - 3600000000
                               AND c.end_us > o.source_us)) THEN
    RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION telemetry_truncate_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM equipment_usage) THEN
    RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NULL;
END $$;
"""
PG_TRIGGERS = [
    "CREATE TRIGGER telemetry_chunk_retention AFTER DELETE ON telemetry_chunk REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_chunk_retention()",
    "CREATE TRIGGER telemetry_sample_retention AFTER DELETE ON telemetry_sample REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_sample_retention()",
    "CREATE TRIGGER telemetry_chunk_truncate BEFORE TRUNCATE ON telemetry_chunk "
    "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_truncate_retention()",
    "CREATE TRIGGER telemetry_sample_truncate BEFORE TRUNCATE ON telemetry_sample "
    "FOR EACH STATEMENT EXECUTE FUNCTION telemetry_truncate_retention()",
]
# SQLite stores times as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the comparison is made on whole seconds,
# which refuses a little more than the exact period, never less.
_SECOND = "strftime('%Y-%m-%d %H:%M:%S', {} / 1000000, 'unixepoch')"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER telemetry_chunk_retention BEFORE DELETE ON telemetry_chunk
WHEN EXISTS (SELECT 1 FROM equipment_tag t JOIN equipment_usage u ON u.asset_id = t.asset_id
             WHERE t.id = OLD.tag_id AND substr(u.started_at, 1, 19) <= {_SECOND.format('OLD.end_us')}
               AND (u.ended_at IS NULL OR substr(u.ended_at, 1, 19) >= {_SECOND.format('OLD.start_us')}))
BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
    f"""CREATE TRIGGER telemetry_sample_retention BEFORE DELETE ON telemetry_sample
WHEN NOT EXISTS (SELECT 1 FROM telemetry_chunk c WHERE c.tag_id = OLD.tag_id AND c.start_us <= OLD.source_us
                 AND c.start_us > OLD.source_us - 3600000000 AND c.end_us > OLD.source_us)
 AND EXISTS (SELECT 1 FROM equipment_tag t JOIN equipment_usage u ON u.asset_id = t.asset_id
             WHERE t.id = OLD.tag_id AND substr(u.started_at, 1, 19) <= {_SECOND.format('OLD.source_us')}
               AND (u.ended_at IS NULL OR substr(u.ended_at, 1, 19) >= {_SECOND.format('OLD.source_us')}))
BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
]


def upgrade() -> None:
    op.create_table('telemetry_chunk',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('start_us', sa.BigInteger(), nullable=False),
    sa.Column('end_us', sa.BigInteger(), nullable=False),
    sa.Column('first_us', sa.BigInteger(), nullable=False),
    sa.Column('last_us', sa.BigInteger(), nullable=False),
    sa.Column('sample_count', sa.Integer(), nullable=False),
    sa.Column('codec', sa.SmallInteger(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.CheckConstraint('end_us > start_us AND end_us - start_us <= 3600000000', name=op.f('ck_telemetry_chunk_span_bounded')),
    sa.CheckConstraint('first_us >= start_us AND last_us < end_us AND first_us <= last_us', name=op.f('ck_telemetry_chunk_samples_inside')),
    sa.CheckConstraint('sample_count > 0', name=op.f('ck_telemetry_chunk_not_empty')),
    sa.ForeignKeyConstraint(['tag_id'], ['equipment_tag.id'], name=op.f('fk_telemetry_chunk_tag_id_equipment_tag')),
    sa.PrimaryKeyConstraint('tag_id', 'start_us', name=op.f('pk_telemetry_chunk')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name, table in (('telemetry_sample_truncate', 'telemetry_sample'), ('telemetry_chunk_truncate', 'telemetry_chunk'),
                            ('telemetry_sample_retention', 'telemetry_sample'), ('telemetry_chunk_retention', 'telemetry_chunk')):
            op.execute(f'DROP TRIGGER {name} ON {table}')
        for name in ('telemetry_truncate_retention', 'telemetry_sample_retention', 'telemetry_chunk_retention'):
            op.execute(f'DROP FUNCTION {name}()')
    else:
        op.execute('DROP TRIGGER telemetry_sample_retention')
    op.drop_table('telemetry_chunk')
