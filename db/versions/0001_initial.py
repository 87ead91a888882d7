"""initial schema: runs, spills, partials, histograms, processed ids, flags, references, audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 11:12:55.772155
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=256), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit'))
    )
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_at'), ['at'], unique=False)

    op.create_table('references',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('beam_config', sa.String(length=64), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.String(length=128), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_references'))
    )
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_references_beam_config'), ['beam_config'], unique=False)

    op.create_table('runs',
    sa.Column('run', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('beam_config', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('run', name=op.f('pk_runs'))
    )
    op.create_table('spills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('spill', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expected_batches', sa.Integer(), nullable=True),
    sa.Column('expected_events', sa.Integer(), nullable=True),
    sa.Column('received_batches', sa.Integer(), nullable=False),
    sa.Column('n_events', sa.BigInteger(), nullable=False),
    sa.Column('p_bms_mean', sa.Float(), nullable=True),
    sa.Column('p_bms_sigma', sa.Float(), nullable=True),
    sa.Column('p_ms2_mean', sa.Float(), nullable=True),
    sa.Column('p_ms2_sigma', sa.Float(), nullable=True),
    sa.Column('dp_mean', sa.Float(), nullable=True),
    sa.Column('dp_sigma', sa.Float(), nullable=True),
    sa.Column('low_pout_fraction', sa.Float(), nullable=True),
    sa.Column('ecal_mean', sa.Float(), nullable=True),
    sa.Column('hcal_mean', sa.Float(), nullable=True),
    sa.Column('pik_fraction', sa.Float(), nullable=True),
    sa.Column('pik_fraction_err', sa.Float(), nullable=True),
    sa.Column('daq_completeness', sa.Float(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('quality', sa.Integer(), nullable=True),
    sa.Column('config_version', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['run'], ['runs.run'], name=op.f('fk_spills_run_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spills')),
    sa.UniqueConstraint('run', 'spill', name='uq_spills_run_spill')
    )
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spills_run'), ['run'], unique=False)
        batch_op.create_index(batch_op.f('ix_spills_status'), ['status'], unique=False)

    op.create_table('flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('spill', sa.Integer(), nullable=True),
    sa.Column('spill_id', sa.Integer(), nullable=True),
    sa.Column('subsystem', sa.String(length=32), nullable=False),
    sa.Column('histogram', sa.String(length=128), nullable=True),
    sa.Column('check', sa.String(length=64), nullable=False),
    sa.Column('quality', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('thresholds', sa.JSON(), nullable=True),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('instruction', sa.Text(), nullable=False),
    sa.Column('config_version', sa.String(length=64), nullable=False),
    sa.Column('reference_run', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=128), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('annotation', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['spill_id'], ['spills.id'], name=op.f('fk_flags_spill_id_spills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags'))
    )
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flags_quality'), ['quality'], unique=False)
        batch_op.create_index(batch_op.f('ix_flags_run'), ['run'], unique=False)
        batch_op.create_index(batch_op.f('ix_flags_spill_id'), ['spill_id'], unique=False)

    op.create_table('processed_messages',
    sa.Column('stream', sa.String(length=128), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('spill_id', sa.Integer(), nullable=True),
    sa.Column('batch_index', sa.Integer(), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['spill_id'], ['spills.id'], name=op.f('fk_processed_messages_spill_id_spills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stream', 'message_id', name=op.f('pk_processed_messages'))
    )
    with op.batch_alter_table('processed_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processed_messages_spill_id'), ['spill_id'], unique=False)
        batch_op.create_index('uq_processed_spill_batch', ['spill_id', 'batch_index'], unique=True)

    op.create_table('spill_histograms',
    sa.Column('spill_id', sa.Integer(), nullable=False),
    sa.Column('format_version', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['spill_id'], ['spills.id'], name=op.f('fk_spill_histograms_spill_id_spills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('spill_id', name=op.f('pk_spill_histograms'))
    )
    op.create_table('spill_partials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('spill_id', sa.Integer(), nullable=False),
    sa.Column('consumer', sa.String(length=128), nullable=False),
    sa.Column('n_batches', sa.Integer(), nullable=False),
    sa.Column('n_events', sa.BigInteger(), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['spill_id'], ['spills.id'], name=op.f('fk_spill_partials_spill_id_spills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spill_partials'))
    )
    with op.batch_alter_table('spill_partials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spill_partials_spill_id'), ['spill_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('spill_partials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spill_partials_spill_id'))

    op.drop_table('spill_partials')
    op.drop_table('spill_histograms')
    with op.batch_alter_table('processed_messages', schema=None) as batch_op:
        batch_op.drop_index('uq_processed_spill_batch')
        batch_op.drop_index(batch_op.f('ix_processed_messages_spill_id'))

    op.drop_table('processed_messages')
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flags_spill_id'))
        batch_op.drop_index(batch_op.f('ix_flags_run'))
        batch_op.drop_index(batch_op.f('ix_flags_quality'))

    op.drop_table('flags')
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spills_status'))
        batch_op.drop_index(batch_op.f('ix_spills_run'))

    op.drop_table('spills')
    op.drop_table('runs')
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_references_beam_config'))

    op.drop_table('references')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_at'))

    op.drop_table('audit')
