"""What the judge of a spill sees of its run before it: history, start, recent cell maps.

Every query here reads the run *as it was when the spill closed* — spills of the same run
with a smaller number that had closed before it — so ``dqm recheck`` sees what the live
judge saw. Three views of the same past:

* the history window: the last ``HISTORY_SPILLS`` spills' summaries (trend checks);
* the run's start: its first ``HISTORY_SPILLS`` spills' summaries (the anchor of change
  detection, which must not slide with the window);
* recent histograms: a few named histograms of the last spills, decoded once and cached
  per process (cell checks add up spills to see cells that expect a few hits per spill).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

import boost_histogram as bh
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dqm.core.evaluate import HISTORY_SPILLS, history_series
from dqm.core.histio import decode_histograms
from dqm.store.models import Spill, SpillHistograms

__all__ = ["earlier_spills", "history", "run_start", "RecentHistograms"]


def earlier_spills(session: Session, sp: Spill, *columns) -> Select:
    """The run's spills that had closed before ``sp`` closed (what its judge could see)."""
    cutoff = sp.closed_at
    stmt = select(*(columns or (Spill.spill, Spill.summary))).where(
        Spill.run == sp.run, Spill.spill < sp.spill, Spill.closed, Spill.id != sp.id
    )
    if cutoff is not None:  # the column type converts the time for either database
        stmt = stmt.where(Spill.closed_at < cutoff)
    return stmt


def _series(rows) -> dict[str, list[float]]:
    return history_series([r.summary for r in rows], spills=[r.spill for r in rows])


def history(session: Session, sp: Spill) -> dict[str, list[float]]:
    """The run's last ``HISTORY_SPILLS`` spills before ``sp``, oldest first."""
    stmt = earlier_spills(session, sp).order_by(Spill.spill.desc()).limit(HISTORY_SPILLS)
    return _series(session.execute(stmt).all()[::-1])


def run_start(session: Session, sp: Spill) -> dict[str, list[float]]:
    """The run's first ``HISTORY_SPILLS`` spills before ``sp``: change detection's own anchor."""
    stmt = earlier_spills(session, sp).order_by(Spill.spill).limit(HISTORY_SPILLS)
    return _series(session.execute(stmt).all())


class RecentHistograms:
    """Named histograms of a run's last spills before a given one, decoded once per process.

    A closed spill's histograms do not change, so decoded ones are kept (LRU by spill id);
    live, each close then decodes only the spill closed just before it.
    """

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple[int, frozenset[str]], dict[str, bh.Histogram]] = (
            OrderedDict()
        )
        self.size = size

    def get(
        self, session: Session, sp: Spill, names: Collection[str], n_spills: int
    ) -> list[dict[str, bh.Histogram]]:
        """``names`` of the ``n_spills`` spills before ``sp`` (oldest first; fewer at a start)."""
        if not names or n_spills <= 0:
            return []
        wanted = frozenset(names)
        ids = session.scalars(
            earlier_spills(session, sp, Spill.id).order_by(Spill.spill.desc()).limit(n_spills)
        ).all()[::-1]
        missing = [i for i in ids if (i, wanted) not in self._items]
        if missing:
            rows = session.execute(
                select(SpillHistograms.spill_id, SpillHistograms.blob).where(
                    SpillHistograms.spill_id.in_(missing)
                )
            ).all()
            for spill_id, blob in rows:
                self._items[(spill_id, wanted)] = decode_histograms(blob, wanted)[0]
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        out = []
        for i in ids:
            if (i, wanted) in self._items:
                self._items.move_to_end((i, wanted))
            out.append(self._items.get((i, wanted), {}))
        return out
