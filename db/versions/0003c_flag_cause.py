"""flags.cause: the incident (cause) each flag belongs to

Revision ID: 0003c
Revises: 0002
Create Date: 2026-11-26 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003c'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cause', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.drop_column('cause')
