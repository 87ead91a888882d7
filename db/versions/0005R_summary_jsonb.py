"""spills.summary as JSONB on PostgreSQL: one quantity read without parsing the whole summary

Trends read one quantity of each spill's summary (``summary->>'key'``). Stored as ``json``
(text), PostgreSQL parses the whole ~1.9 kB summary for every point: 150-160 ms for 2000
points at load 12 on the build machine; as ``jsonb`` (binary, parsed once when written)
33-42 ms for the same points, same minute. SQLite keeps its JSON text (no such type).

Revision ID: 0005R
Revises: 0004P
Create Date: 2026-12-01 21:50:00
"""

from alembic import op

revision = "0005R"
down_revision = "0004P"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE spills ALTER COLUMN summary TYPE jsonb USING summary::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE spills ALTER COLUMN summary TYPE json USING summary::json")
