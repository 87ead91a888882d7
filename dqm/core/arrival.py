"""Did a spill arrive as its end-of-spill marker announced? Pure: counts in, a flag out.

The DAQ ends every spill with a marker carrying how many batches and events it sent.
The worker counts what arrived — every batch of the spill while it is open, before or
after the marker, except a batch whose index is beyond the count the marker announced
(known when the marker was seen first) or one arriving once the spill has closed: those
are *late* and not counted (see ``docs/judging-errors.md``). This module turns the
counts into the DAQ judgement: nothing when all agrees, else one BAD result that says
both sides.

The rule depends only on counts that are the same however the worker groups its
reads, so the verdict does not change with ``DQM_READ_COUNT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dqm.checks._core import CheckResult, Quality

__all__ = ["Arrival", "arrival_judgement", "SPILL_COMPLETE_CHECK", "MARKER_MISMATCH_CHECK"]

#: Check name of the flag of a spill closed by the timeout (data missing).
SPILL_COMPLETE_CHECK = "spill_complete"
#: Check name of the flag of a spill that closed but disagrees with its marker.
MARKER_MISMATCH_CHECK = "marker_mismatch"


@dataclass(frozen=True)
class Arrival:
    """What the marker announced and what arrived, for one spill.

    Attributes:
        received_batches: batches counted into the spill's histograms.
        received_events: events in them (``None``: not known, not compared).
        expected_batches: batches the marker announced (``None``: no marker).
        expected_events: events the marker announced (``None``: no marker).
        late_batches: batches of the spill beyond the count its marker announced, or
            arriving after it had closed; dead-lettered, not counted.
        late_events: events in those.
    """

    received_batches: int = 0
    received_events: int | None = None
    expected_batches: int | None = None
    expected_events: int | None = None
    late_batches: int = 0
    late_events: int = 0

    @property
    def agrees(self) -> bool:
        """Marker present, batch and event counts equal, nothing late."""
        return (
            self.expected_batches is not None
            and self.received_batches == self.expected_batches
            and (
                self.expected_events is None
                or self.received_events is None
                or self.received_events == self.expected_events
            )
            and self.late_batches == 0
        )


def _n(count: int | None, one: str, many: str) -> str:
    """``"20 000 events"``: thousands grouped with spaces (SI style), singular for 1."""
    if count is None:
        return f"? {many}"
    return f"{count:,}".replace(",", " ") + f" {one if count == 1 else many}"


def _count(count: int) -> str:
    return f"{count:,}".replace(",", " ")


def _side(batches: int | None, events: int | None) -> str:
    return _n(batches, "batch", "batches") + (
        f" / {_n(events, 'event', 'events')}" if events is not None else ""
    )


def _late(a: Arrival) -> str:
    if not a.late_batches:
        return ""
    return (
        f"; {_side(a.late_batches, a.late_events)} more arrived beyond the marker's count or "
        "after the spill had closed, not counted"
    )


def arrival_judgement(status: str, arrival: Arrival) -> CheckResult | None:
    """The DAQ flag of a closed spill's arrival, or ``None`` when all agrees.

    Args:
        status: ``"complete"`` (closed when the announced batches were in) or
            ``"incomplete"`` (closed by ``DQM_SPILL_TIMEOUT_S``).
        arrival: the counts.

    Returns:
        ``spill_complete`` BAD for an incomplete spill; ``marker_mismatch`` BAD for a
        complete one whose batches or events differ from the marker's, or that had
        late batches; ``None`` otherwise. Value: batches that arrived (counted + late)
        minus batches announced.
    """
    a = arrival
    if status == "complete" and a.agrees:
        return None
    announced = _side(a.expected_batches, a.expected_events)
    arrived = _side(a.received_batches, a.received_events)
    excess = a.received_batches + a.late_batches - (a.expected_batches or 0)
    details = {
        "received_batches": a.received_batches,
        "received_events": a.received_events,
        "expected_batches": a.expected_batches,
        "expected_events": a.expected_events,
        "late_batches": a.late_batches,
        "late_events": a.late_events,
    }
    threshold = {
        "expected_batches": float(a.expected_batches) if a.expected_batches is not None else -1.0
    }
    if status != "complete":
        if a.expected_batches is None:
            why = f"{arrived} arrived and no end-of-spill marker"
        else:
            why = f"{_count(a.received_batches)} of {_n(a.expected_batches, 'batch', 'batches')}"
            if a.received_events is not None and a.expected_events is not None:
                why += (
                    f" ({_count(a.received_events)} of {_n(a.expected_events, 'event', 'events')})"
                )
            why += " arrived"
        return CheckResult(
            Quality.BAD,
            float(a.received_batches),
            threshold,
            f"spill closed incomplete after the timeout: {why}{_late(a)}",
            details,
            SPILL_COMPLETE_CHECK,
        )
    return CheckResult(
        Quality.BAD,
        float(excess),
        threshold,
        f"end-of-spill marker announced {announced}, {arrived} arrived{_late(a)}",
        details,
        MARKER_MISMATCH_CHECK,
    )
