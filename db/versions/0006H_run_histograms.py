"""per-run histograms (the report's day, histogram retention); check texts stored once

Revision ID: 0006H
Revises: 0005W
Create Date: 2026-12-02 01:00:00

run_histograms holds, per run, the sum of the histograms of the run's closed spills whose
closing time is at or before ``closed_until``, and how many spills that is. The report's
day reads it by primary key for each run wholly inside the day; the histogram retention
deletes per-spill rows only of spills it covers. spills (run, closed_at): the spills of a
run closed after its aggregate (the part to add), and a run's first and last closing time,
without reading every spill of the run in id order. check_texts: a check's shifter
instruction per configuration version, once, instead of on every flagged row (flags rows
written from now on leave it out; older rows keep theirs).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006H"
down_revision = "0005W"  # the lead re-chains at the merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_histograms",
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("n_spills", sa.Integer(), nullable=False),
        sa.Column("n_summed", sa.Integer(), nullable=False),
        sa.Column("closed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run"], ["runs.run"], name=op.f("fk_run_histograms_run_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run", name=op.f("pk_run_histograms")),
    )
    op.create_index("ix_spills_run_closed_at", "spills", ["run", "closed_at"])
    op.create_table(
        "check_texts",
        sa.Column("config_version", sa.String(length=64), nullable=False),
        sa.Column("histogram", sa.String(length=128), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "config_version", "histogram", "check", name=op.f("pk_check_texts")
        ),
    )


def downgrade() -> None:
    op.drop_table("check_texts")
    op.drop_index("ix_spills_run_closed_at", table_name="spills")
    op.drop_table("run_histograms")
