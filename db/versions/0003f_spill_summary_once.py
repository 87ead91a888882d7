"""spill summary stored once: the JSON column, without the 12 summary columns beside it

The spills table kept the summary twice: a JSON copy (read everywhere) and twelve Float
columns (p_bms_mean … daq_completeness) that no query filtered, sorted or indexed on.
Upgrade folds any column value the JSON lacks into it, then drops the columns;
downgrade adds them back, filled from the JSON. Nothing is lost either way.

The columns are dropped with ``ALTER TABLE … DROP COLUMN`` on SQLite too (SQLite ≥ 3.35),
not in Alembic's batch mode, which would rebuild the whole table (and, were foreign keys on
during a migration, dropping the old ``spills`` would cascade-delete every flag and
histogram: :func:`dqm.store.migrate.upgrade_database` switches them off on SQLite).

Revision ID: 0003f
Revises: 0003a
Create Date: 2026-12-01 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003f"
down_revision = "0003a"
branch_labels = None
depends_on = None

SUMMARY_COLUMNS = (
    "p_bms_mean",
    "p_bms_sigma",
    "p_ms2_mean",
    "p_ms2_sigma",
    "dp_mean",
    "dp_sigma",
    "low_pout_fraction",
    "ecal_mean",
    "hcal_mean",
    "pik_fraction",
    "pik_fraction_err",
    "daq_completeness",
)
CHUNK = 1000

spills = sa.table(
    "spills",
    sa.column("id", sa.Integer),
    sa.column("summary", sa.JSON),
    *(sa.column(name, sa.Float) for name in SUMMARY_COLUMNS),
)


def _chunks(conn, *where):
    """The spill rows matching ``where``, CHUNK at a time in id order (a run has thousands)."""
    last = 0
    while True:
        rows = (
            conn.execute(
                sa.select(spills)
                .where(spills.c.id > last, *where)
                .order_by(spills.c.id)
                .limit(CHUNK)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def upgrade() -> None:
    conn = op.get_bind()
    has_value = sa.or_(*(spills.c[name].is_not(None) for name in SUMMARY_COLUMNS))
    for rows in _chunks(conn, has_value):
        changed = []
        for row in rows:
            summary = dict(row["summary"] or {})
            missing = {
                name: row[name]
                for name in SUMMARY_COLUMNS
                if row[name] is not None and summary.get(name) is None
            }
            if missing:
                changed.append({"_id": row["id"], "_summary": {**summary, **missing}})
        if changed:
            conn.execute(
                spills.update()
                .where(spills.c.id == sa.bindparam("_id"))
                .values(summary=sa.bindparam("_summary")),
                changed,
            )
    for name in SUMMARY_COLUMNS:
        op.drop_column("spills", name)


def downgrade() -> None:
    for name in SUMMARY_COLUMNS:
        op.add_column("spills", sa.Column(name, sa.Float(), nullable=True))
    conn = op.get_bind()
    for rows in _chunks(conn, spills.c.summary.is_not(None)):
        filled = []
        for row in rows:
            summary = row["summary"] or {}
            values = {
                name: float(summary[name])
                for name in SUMMARY_COLUMNS
                if isinstance(summary.get(name), (int, float))
                and not isinstance(summary.get(name), bool)
            }
            if values:
                filled.append(
                    {"_id": row["id"], **{f"_{n}": values.get(n) for n in SUMMARY_COLUMNS}}
                )
        if filled:
            conn.execute(
                spills.update()
                .where(spills.c.id == sa.bindparam("_id"))
                .values({n: sa.bindparam(f"_{n}") for n in SUMMARY_COLUMNS}),
                filled,
            )
