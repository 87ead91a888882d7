"""Closing spills for a worker: merge, judge (close hooks), announce — and never stop.

Nothing that goes wrong while closing stops the worker:

* a database outage (:func:`dqm.store.engine.is_outage`) rolls the close back and is
  raised as ``OperationalError`` for the worker's retry with back-off;
* a close hook that raises anything else is rolled back to its savepoint and logged;
  the spill still closes and is announced (the judging hook,
  :class:`dqm.store.judge.SpillJudge`, stores its own CHECK_ERROR flags first);
* a spill whose partials cannot be merged, or whose close fails in any other way, is
  closed by :func:`dqm.store.closing.close_failed` (no histograms, a flag saying why);
  if even that fails it is left for a later sweep with a growing delay.

Late batches counted against a closed spill make the hooks judge it again (``amend``);
run conditions that arrive or change after some of a run's spills were judged make them
judge those spills again (``rejudge``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import redis

from dqm.checks._core import error_text
from dqm.store.closing import ClosedSpill, close_failed, spill_identity, try_close
from dqm.store.engine import OperationalError, Session, is_outage

if TYPE_CHECKING:
    from dqm.pipeline.worker import CloseHook, Worker

__all__ = ["SpillCloser", "MAX_CLOSE_RETRY_S"]

log = logging.getLogger("dqm.pipeline.worker")

#: Longest wait before trying again to close a spill whose close failed twice.
MAX_CLOSE_RETRY_S = 300.0


def _outage(exc: BaseException) -> OperationalError:
    """The error to hand the worker's outage handling (it expects OperationalError)."""
    if isinstance(exc, OperationalError):
        return exc
    return OperationalError(str(exc), None, exc)  # type: ignore[arg-type]


class SpillCloser:
    """Closes a worker's spills; see the module docstring for what it absorbs."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._retry_at: dict[int, float] = {}  # spills whose close failed: not before
        self._backoff_s: dict[int, float] = {}

    def close(self, spill_id: int, *, incomplete: bool, arrived: dict | None = None) -> bool:
        """Close one spill and announce it; True when done (or not closable by us).

        Raises:
            OperationalError: the database is out; nothing was stored, retry later.
        """
        if time.monotonic() < self._retry_at.get(spill_id, 0.0):
            return True  # failed twice recently: leave it to a later sweep
        try:
            closed, extra = self._close_once(spill_id, incomplete=incomplete)
        except Exception as exc:  # noqa: BLE001 — an outage is retried, nothing else escapes
            if is_outage(exc):
                log.error("could not close spill id %d (%s); will retry", spill_id, _orig(exc))
                raise _outage(exc) from exc
            log.error("closing spill id %d failed; closing it as failed", spill_id, exc_info=exc)
            try:
                closed, extra = self._close_once(spill_id, incomplete=True, error=error_text(exc))
            except Exception as again:  # noqa: BLE001
                if is_outage(again):
                    raise _outage(again) from again
                wait = min(2 * self._backoff_s.get(spill_id, 5.0), MAX_CLOSE_RETRY_S)
                self._backoff_s[spill_id] = wait
                self._retry_at[spill_id] = time.monotonic() + wait
                log.error(
                    "could not close spill id %d even as failed; next try in %.0f s",
                    spill_id,
                    wait,
                    exc_info=again,
                )
                return True
        self._retry_at.pop(spill_id, None)
        self._backoff_s.pop(spill_id, None)
        if closed is None:
            return True
        self.worker.held.drop(spill_id)
        stats = self.worker.stats
        stats.spills_closed += 1
        stats.check_errors += int(extra.get("check_errors", 0))
        t0 = (arrived or {}).get((closed.run, closed.spill))
        if t0 is not None:
            stats.close_latency_s.append(time.monotonic() - t0)
        note = {
            "run": closed.run,
            "spill": closed.spill,
            "status": closed.status,
            "n_events": closed.summary.get("n_events"),
            **extra,
        }
        where = {"run": closed.run, "spill": closed.spill}  # logfmt fields: grep 'run=7 spill=12'
        log.info(
            "spill closed",
            extra={**where, "status": closed.status, "n_events": int(note["n_events"] or 0)},
        )
        self.announce(note, where)
        return True

    def _close_once(
        self, spill_id: int, *, incomplete: bool, error: str | None = None
    ) -> tuple[ClosedSpill | None, dict]:
        """One closing transaction: merge (or, with ``error``, close as failed), run hooks."""
        w = self.worker
        extra: dict = {}
        with w.sessions.begin() as session:
            if error is not None:
                closed = close_failed(session, spill_id, error)
            else:
                try:
                    with session.begin_nested():
                        closed = try_close(
                            session,
                            spill_id,
                            w.filler.book,
                            incomplete=incomplete,
                            held=w.held.get(spill_id),
                        )
                except Exception as exc:  # noqa: BLE001 — a spill that cannot merge still closes
                    if is_outage(exc):
                        raise
                    log.error("merging spill id %d failed", spill_id, exc_info=exc)
                    closed = close_failed(session, spill_id, error_text(exc))
            if closed is None:
                return None, {}
            for hook in w.close_hooks:
                extra.update(self._run_hook(session, hook, closed) or {})
        return closed, extra

    def _run_hook(self, session: Session, hook: CloseHook, closed: ClosedSpill) -> dict | None:
        """One close hook in a savepoint: an outage propagates, anything else is logged."""
        try:
            with session.begin_nested():
                return hook(session, closed)
        except Exception as exc:  # noqa: BLE001 — the spill closes and is announced anyway
            if is_outage(exc):
                raise
            self.worker.stats.check_errors += 1
            log.error(
                "close hook %s failed: %s",
                getattr(hook, "__name__", type(hook).__name__),
                error_text(exc),
                exc_info=exc,
                extra={"run": closed.run, "spill": closed.spill},
            )
            return {"judging_error": error_text(exc)}  # counted once, here

    def amend(self, spill_id: int) -> bool:
        """Let the hooks with an ``amend(session, spill_id)`` judge a closed spill again.

        Raises:
            OperationalError: the database is out; retry later.
        """
        w = self.worker
        amends = [a for a in (getattr(h, "amend", None) for h in w.close_hooks) if a]
        extra: dict = {}
        try:
            with w.sessions.begin() as session:
                for amend in amends:
                    try:
                        with session.begin_nested():
                            extra.update(amend(session, spill_id) or {})
                    except Exception as exc:  # noqa: BLE001
                        if is_outage(exc):
                            raise
                        w.stats.check_errors += 1
                        log.error("amending spill id %d failed", spill_id, exc_info=exc)
                sp = spill_identity(session, spill_id)
        except Exception as exc:  # noqa: BLE001
            if is_outage(exc):
                raise _outage(exc) from exc
            log.error("could not amend spill id %d; skipped", spill_id, exc_info=exc)
            return True
        if sp is None or not extra:
            return True
        where = {"run": sp[0], "spill": sp[1]}
        log.warning("late batches: spill judged again", extra=where)
        self.announce({**where, "status": sp[2], **extra}, where)
        return True

    def rejudge(self, run: int) -> bool:
        """Let the hooks with a ``rejudge(session, run)`` judge again a run's spills judged
        under other conditions (they arrived or changed later), and announce each one.

        Raises:
            OperationalError: the database is out; retry later.
        """
        w = self.worker
        rejudges = [r for r in (getattr(h, "rejudge", None) for h in w.close_hooks) if r]
        notes: list[dict] = []
        try:
            with w.sessions.begin() as session:
                for rejudge in rejudges:
                    notes.extend(rejudge(session, run))
        except Exception as exc:  # noqa: BLE001 — the spills keep the flags they have
            if is_outage(exc):
                raise _outage(exc) from exc
            log.error("judging run %d again under its conditions failed", run, exc_info=exc)
            return True
        w.stats.rejudged += len(notes)
        for note in notes:
            self.announce(note, {"run": note.get("run"), "spill": note.get("spill")})
        return True

    def announce(self, note: dict, where: dict) -> None:
        """Publish on the closed-spill channel; Redis being away loses only the notice."""
        try:
            self.worker.r.publish(self.worker.settings.channel, json.dumps(note, default=str))
        except redis.RedisError as exc:
            log.warning("could not announce closed spill: %s", exc, extra=where)


def _orig(exc: BaseException) -> BaseException:
    """The driver's own error inside SQLAlchemy's wrapper (shorter, and what operators know)."""
    return getattr(exc, "orig", None) or exc
