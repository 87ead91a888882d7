"""models: learned anomaly models (PCA per subsystem and beam configuration) with provenance

Revision ID: 0005L
Revises: 0005R
Create Date: 2026-12-01 21:50:00

One row per trained model: what it judges (subsystem, beam configuration, version), who
trained it when, on which spills (run/spill ranges; training and held-out), the score
distributions, the calibrated threshold and its false-alarm target, and the fitted arrays
(principal components, mean, scale) as float32 .npy bytes. ``active`` marks the model in
use for its subsystem and beam configuration; older versions stay, so a flag's recorded
model id is always found again (``dqm recheck``).
"""

from alembic import op
import sqlalchemy as sa

revision = "0005L"
down_revision = "0005R"  # written after 0004P; chained after 0005R (merged to main first)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subsystem", sa.String(length=32), nullable=False),
        sa.Column("beam_config", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("n_holdout", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("false_alarm", sa.Float(), nullable=False),
        sa.Column("layout", sa.JSON(), nullable=False),
        sa.Column("components", sa.LargeBinary(), nullable=False),
        sa.Column("mean", sa.LargeBinary(), nullable=False),
        sa.Column("scale", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_index("ix_models_config", "models", ["beam_config", "subsystem"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_models_config", table_name="models")
    op.drop_table("models")
