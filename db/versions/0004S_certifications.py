"""certifications: shifters' and experts' sign-off of spill ranges per subsystem (append-only)

Revision ID: 0004S
Revises: 0003f
Create Date: 2026-12-01 18:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0004S"
down_revision = "0003f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("subsystem", sa.String(length=32), nullable=False),
        sa.Column("first_spill", sa.Integer(), nullable=False),
        sa.Column("last_spill", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("certified_by", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certifications")),
    )
    op.create_index(op.f("ix_certifications_run"), "certifications", ["run"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_certifications_run"), table_name="certifications")
    op.drop_table("certifications")
