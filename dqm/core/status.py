"""A spill's status: the three words the store, the judge and every page share.

A spill is *open* while its batches arrive; it closes once, as *complete* (every batch
the end-of-spill marker announced was stored) or *incomplete* (closed after the spill
timeout with batches or the marker missing). Pure: the store writes these strings in
``spills.status``, :func:`dqm.core.evaluate.evaluate_spill` flags an incomplete spill,
and nothing else spells them out.
"""

from __future__ import annotations

__all__ = ["SPILL_OPEN", "SPILL_COMPLETE", "SPILL_INCOMPLETE"]

SPILL_OPEN = "open"
SPILL_COMPLETE = "complete"
SPILL_INCOMPLETE = "incomplete"
