"""channel masks and check threshold overrides

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:17:24.878651
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_masks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('histogram', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.JSON(), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_masks'))
    )
    with op.batch_alter_table('channel_masks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_masks_histogram'), ['histogram'], unique=False)

    op.create_table('check_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('histogram', sa.String(length=128), nullable=False),
    sa.Column('check', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_overrides'))
    )


def downgrade() -> None:
    op.drop_table('check_overrides')
    with op.batch_alter_table('channel_masks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_masks_histogram'))

    op.drop_table('channel_masks')
