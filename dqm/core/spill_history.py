"""The run's earlier spills as the trend checks see them: per-key series of summaries.

Live judging (:mod:`dqm.store.flags`), ``dqm recheck`` and the detection study
(:mod:`dqm.sim.validate`) all build a spill's history with :func:`history_series`, so they
judge alike; :func:`record_quality` stores a spill's roll-up in its summary so that later
spills' change detection knows which spills were certified.

Layer: pure core, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dqm.core.specs import SpecSet
from dqm.core.verdict import Verdict

__all__ = [
    "HISTORY_SPILLS",
    "REFERENCE_SPILLS",
    "QUALITY_KEY",
    "SPILL_KEY",
    "history_series",
    "record_quality",
    "accumulated",
    "config_version",
]

#: How many earlier spills of the run the trend checks (CUSUM, EWMA, intensity) see; also how
#: many of the run's first spills (``run_start``) and at most how many spills of the reference
#: run (``REFERENCE_SPILLS``) change detection may anchor its baseline on.
HISTORY_SPILLS = 60
REFERENCE_SPILLS = 500
#: Summary key of the stored per-subsystem roll-up, and the history key of spill numbers.
QUALITY_KEY = "quality"
SPILL_KEY = "spill"


def _flat(summary: Mapping | None) -> dict[str, float]:
    """A summary's numbers, with its stored roll-up ``{"quality": {subsystem: q}}`` flattened
    to ``"quality.<subsystem>"`` keys (see :func:`record_quality`)."""
    if not summary:
        return {}
    out = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    quality = summary.get(QUALITY_KEY)
    if isinstance(quality, Mapping):
        out.update(
            {f"{QUALITY_KEY}.{s}": float(q) for s, q in quality.items() if isinstance(q, int)}
        )
    return out


def history_series(
    summaries: Sequence[Mapping | None], spills: Sequence[int] | None = None
) -> dict[str, list[float]]:
    """Per-key series of earlier spills' summaries (oldest first), NaN where a key is missing.

    Live (:mod:`dqm.store.flags`), recheck and the detection study (:mod:`dqm.sim.validate`)
    all build the history with this one function, so they judge alike. Each spill's
    stored quality roll-up becomes ``"quality.<subsystem>"`` (change detection leaves
    flagged spills out of its baseline with it), and ``spills`` — the spill numbers, when
    given — becomes the ``"spill"`` series.
    """
    flat = [_flat(r) for r in summaries]
    keys = {k for r in flat for k in r}
    out = {k: [r.get(k, float("nan")) for r in flat] for k in sorted(keys)}
    if spills is not None:
        if len(spills) != len(summaries):
            raise ValueError(f"{len(spills)} spill numbers for {len(summaries)} summaries")
        out[SPILL_KEY] = [float(s) for s in spills]
    return out


def record_quality(summary: Mapping, verdict: Verdict) -> dict:
    """The summary with the verdict's per-subsystem roll-up under ``"quality"``.

    This is what later spills' change detection reads back through
    :func:`history_series` to know which spills were certified.
    """
    out = dict(summary)
    out[QUALITY_KEY] = {s: int(q) for s, q in verdict.subsystems.items()}
    return out


def accumulated(
    specs: SpecSet, overrides: Mapping[tuple[str, str], Mapping] | None = None
) -> tuple[set[str], int]:
    """Histograms whose checks add up earlier spills (``spills`` > 1), and how many earlier
    spills the largest of them needs."""
    names, most = set(), 1
    for spec in specs:
        for check in spec.checks:
            params = {**check.params, **(overrides or {}).get((spec.name, check.type), {})}
            spills = int(params.get("spills") or 1)
            if spills > 1:
                names.add(spec.name)
                most = max(most, spills)
    return names, most - 1


def config_version(specs: SpecSet, override_id: int | None) -> str:
    """``<spec hash>+<newest override id>``: names everything that sets a threshold."""
    return f"{specs.version}+{override_id or 0}"
