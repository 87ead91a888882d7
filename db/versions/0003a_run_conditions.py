"""run conditions: runs, spills and references record the conditions; beam_config may be unknown

Runs carry the conditions the DAQ announced (JSON) and the stream id of that announcement;
``beam_config`` becomes nullable because a run whose conditions never arrived has none (it
used to be stored as 'mu160' whatever the beam). Existing rows keep their values: old runs
and references stay 'mu160' with unknown conditions, so they still match a 160 GeV μ⁻ run.
Spills record the conditions they were judged under, references those they were taken under.

Revision ID: 0003a
Revises: 0003b
Create Date: 2026-11-26 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003a'
down_revision = '0003b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.alter_column('beam_config', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('conditions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('conditions_message', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('conditions_at', sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('conditions', sa.JSON(), nullable=True))
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.add_column(sa.Column('conditions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('references', schema=None) as batch_op:
        batch_op.drop_column('conditions')
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.drop_column('conditions')
    # runs whose conditions never arrived had no beam configuration: the old schema needs one
    op.execute("UPDATE runs SET beam_config = 'unknown' WHERE beam_config IS NULL")
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('conditions_at')
        batch_op.drop_column('conditions_message')
        batch_op.drop_column('conditions')
        batch_op.alter_column('beam_config', existing_type=sa.String(length=64), nullable=False)
