"""On how many events a check judged: DAQ-source coverage of a spill, per histogram.

A histogram is filled only from events in which every DAQ source it requires was read
out (:attr:`dqm.core.specs.HistogramSpec.requires`). A check on it therefore judged fewer
events than the spill has whenever a source was missing, and the shifter must read that
next to its verdict: "(on 9 876 of 20 000 events: MS1 absent in 50 %)". When no event
had the sources, the check did not judge at all — NO_DATA that says why, instead of a
verdict on an empty (or, before requires existed, zero-filled) histogram.

The spill summary carries how many events had each ``daq_sources`` word
(``summary["daq_patterns"]``, from :func:`dqm.core.summary.finalize`), so the count for
any set of sources is one sum, and spills stored before the counts existed are judged
as before (no annotation).

Layer: pure core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dqm.checks import CheckResult, Quality
from dqm.core.causes import percent
from dqm.core.events import DAQ_SOURCES
from dqm.core.specs import HistogramSpec

__all__ = ["SourceCoverage", "count_text"]


def count_text(n: float) -> str:
    """An event count with a space between thousands, as in "9 876 of 20 000"."""
    return f"{int(round(n)):,}".replace(",", " ")


@dataclass(frozen=True)
class SourceCoverage:
    """Events of one spill by the set of DAQ sources they carry."""

    n_events: int
    patterns: Mapping[int, int]  # daq_sources word -> number of events with exactly that word

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> SourceCoverage | None:
        """The spill's coverage, or None for a summary without ``daq_patterns``."""
        raw = summary.get("daq_patterns")
        if not isinstance(raw, Mapping) or not raw:
            return None
        try:
            patterns = {int(k): int(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            return None
        return cls(sum(patterns.values()), patterns)

    def n_with(self, bits: int) -> int:
        """Events in which every source of the mask ``bits`` was read out."""
        return sum(n for word, n in self.patterns.items() if word & bits == bits)

    def absent(self, spec: HistogramSpec) -> dict[str, float]:
        """Required sources missing from some events -> the fraction of events without them."""
        out = {}
        for source in spec.requires:
            bit = 1 << DAQ_SOURCES.index(source)
            missing = sum(n for word, n in self.patterns.items() if not word & bit)
            if missing:
                out[source] = missing / self.n_events
        return out

    def _why(self, spec: HistogramSpec) -> str:
        return ", ".join(f"{s} absent in {percent(f)}" for s, f in self.absent(spec).items())

    def not_judged(self, spec: HistogramSpec, check: str) -> CheckResult | None:
        """NO_DATA when no event had the histogram's sources (None: there is something)."""
        if not spec.requires or self.n_events == 0 or self.n_with(spec.source_bits):
            return None
        absent = self.absent(spec)
        return CheckResult(
            Quality.NO_DATA,
            None,
            {},
            f"not judged: {', '.join(absent)} absent in all {count_text(self.n_events)} events",
            {"n_judged": 0, "n_events": self.n_events, "absent": absent},
            check,
        )

    def annotate(self, spec: HistogramSpec, result: CheckResult) -> CheckResult:
        """``result`` saying on how many events it judged (and why fewer than the spill's)."""
        if "n_judged" in result.details:
            return result
        n_judged = self.n_with(spec.source_bits)
        details = {**result.details, "n_judged": n_judged, "n_events": self.n_events}
        explanation = result.explanation
        if n_judged < self.n_events:
            details["absent"] = self.absent(spec)
            explanation += (
                f" (on {count_text(n_judged)} of {count_text(self.n_events)} events: "
                f"{self._why(spec)})"
            )
        return replace(result, details=details, explanation=explanation)
