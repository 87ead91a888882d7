"""quality CHECK_ERROR (BAD moves from 3 to 4); late batches per spill

Revision ID: 0003b
Revises: 0003c
Create Date: 2026-12-01 15:00:00

``Quality`` gains CHECK_ERROR between WARNING and BAD, keeping "integer order is
severity order" (every ``quality >= WARNING`` filter stays right), so stored BAD
values move from 3 to 4: the flags' and spills' quality columns and the per-subsystem
qualities kept in ``spills.summary["quality"]``. Downgrading maps CHECK_ERROR back to
BAD (the old scheme had no better word for "not judged because the judge failed").

``spills.late_batches`` / ``late_events`` count batches that came after the spill's
end-of-spill marker or after it closed (not counted, judged by daq/marker_mismatch).
"""
from alembic import op
import sqlalchemy as sa


revision = '0003b'
down_revision = '0003c'  # after main's 0003c (cause column); chained at the merge of main
branch_labels = None
depends_on = None

_OLD_BAD, _CHECK_ERROR, _NEW_BAD = 3, 3, 4


def _remap_summaries(mapping: dict[int, int]) -> None:
    """Rewrite the qualities inside ``spills.summary`` (JSON) with ``mapping``."""
    conn = op.get_bind()
    spills = sa.table('spills', sa.column('id', sa.Integer), sa.column('summary', sa.JSON))
    rows = conn.execute(sa.select(spills.c.id, spills.c.summary).where(spills.c.summary.is_not(None)))
    for spill_id, summary in rows.fetchall():
        qualities = (summary or {}).get('quality')
        if not isinstance(qualities, dict):
            continue
        remapped = {k: mapping.get(v, v) if isinstance(v, int) else v for k, v in qualities.items()}
        if remapped != qualities:
            conn.execute(
                spills.update().where(spills.c.id == spill_id).values(summary={**summary, 'quality': remapped})
            )


def upgrade() -> None:
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_batches', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('late_events', sa.BigInteger(), server_default='0', nullable=False))
    op.execute(f"UPDATE flags SET quality = {_NEW_BAD} WHERE quality = {_OLD_BAD}")
    op.execute(f"UPDATE spills SET quality = {_NEW_BAD} WHERE quality = {_OLD_BAD}")
    _remap_summaries({_OLD_BAD: _NEW_BAD})


def downgrade() -> None:
    # CHECK_ERROR (3) reads as the old BAD (3) already; only BAD itself moves back
    op.execute(f"UPDATE flags SET quality = {_OLD_BAD} WHERE quality = {_NEW_BAD}")
    op.execute(f"UPDATE spills SET quality = {_OLD_BAD} WHERE quality = {_NEW_BAD}")
    _remap_summaries({_NEW_BAD: _OLD_BAD})
    with op.batch_alter_table('spills', schema=None) as batch_op:
        batch_op.drop_column('late_events')
        batch_op.drop_column('late_batches')
