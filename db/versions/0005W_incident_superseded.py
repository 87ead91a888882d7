"""incidents superseded when a run's spills are judged again under late conditions

Revision ID: 0005W
Revises: 0005R
Create Date: 2026-12-01 22:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0005W"
down_revision = "0005L"  # written after 0004P; chained after 0005R, then 0005L (models), at the merges
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("superseded_at", sa.DateTime(timezone=True)))
    op.add_column("incidents", sa.Column("superseded_note", sa.Text()))


def downgrade() -> None:
    op.drop_column("incidents", "superseded_note")
    op.drop_column("incidents", "superseded_at")
