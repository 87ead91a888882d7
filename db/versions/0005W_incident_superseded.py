"""incidents superseded when a run's spills are judged again under late conditions

Revision ID: 0005W
Revises: 0005R
Create Date: 2026-12-01 22:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0005W"
down_revision = "0005R"  # chained after main's 0005R (summary jsonb) at the merge of main
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("superseded_at", sa.DateTime(timezone=True)))
    op.add_column("incidents", sa.Column("superseded_note", sa.Text()))


def downgrade() -> None:
    op.drop_column("incidents", "superseded_note")
    op.drop_column("incidents", "superseded_at")
