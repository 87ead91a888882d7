"""incidents that stay until acknowledged, and silences of the alarm sound

Revision ID: 0004I
Revises: 0004S
Create Date: 2026-12-01 18:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0004I"
down_revision = "0004S"  # main had 0004S (certifications) when this branch merged it
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=128), nullable=False),
        sa.Column("subsystem", sa.String(length=32), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("first_spill", sa.Integer(), nullable=False),
        sa.Column("last_spill", sa.Integer(), nullable=False),
        sa.Column("n_spills", sa.Integer(), nullable=False),
        sa.Column("histogram", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("annotation", sa.Text(), nullable=True),
        sa.Column("notified_open_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_ack_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_run"), "incidents", ["run"])
    op.create_index("ix_incidents_run_cause", "incidents", ["run", "cause"])
    op.create_index(op.f("ix_incidents_acknowledged_at"), "incidents", ["acknowledged_at"])
    op.create_table(
        "alarm_silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("up_to_incident", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_silences")),
    )
    op.create_index(op.f("ix_alarm_silences_until"), "alarm_silences", ["until"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alarm_silences_until"), table_name="alarm_silences")
    op.drop_table("alarm_silences")
    op.drop_index(op.f("ix_incidents_acknowledged_at"), table_name="incidents")
    op.drop_index("ix_incidents_run_cause", table_name="incidents")
    op.drop_index(op.f("ix_incidents_run"), table_name="incidents")
    op.drop_table("incidents")
