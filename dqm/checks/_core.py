"""Value types of the check layer: quality, result, context, worst-of roll-up.

Nothing here computes statistics or touches I/O; these are the plain records that
checks return and that the store, the apps and the report consume.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boost_histogram as bh
import numpy as np

from dqm.quality import ROLLUP, Quality, quality_name

if TYPE_CHECKING:
    from dqm.core.conditions import RunConditions

__all__ = [
    "Quality",
    "quality_name",
    "ROLLUP",
    "CheckResult",
    "CheckContext",
    "worst",
    "rollup",
    "to_jsonable",
    "check_error",
    "error_text",
]


def worst(qualities: Iterable[Quality | int]) -> Quality:
    """Worst-of roll-up: the most severe quality, NO_DATA when there is nothing.

    Args:
        qualities: any iterable of :class:`Quality` (or their integer values).

    Returns:
        The maximum by severity; ``Quality.NO_DATA`` for an empty iterable, because
        "nothing was checked" is not "everything is good".
    """
    return Quality(max((int(q) for q in qualities), default=int(Quality.NO_DATA)))


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and sets into plain JSON types.

    Non-finite floats become ``None``: JSON (and PostgreSQL ``jsonb``) has no
    NaN/Infinity, and here they always mean "undefined" or "no limit".
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return value.name
    return value


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check on one spill.

    Attributes:
        quality: GOOD / NO_DATA / WARNING / CHECK_ERROR / BAD.
        value: the number the thresholds were applied to (p-value, max pull,
            offset in mm …), ``None`` when nothing could be computed.
        threshold: the limits applied, e.g. ``{"warning": 4.0, "bad": 6.0}``.
        explanation: one sentence for the shifter naming the bins/channels or the
            quantity that drove the quality, observed vs expected and significance.
        details: machine-readable context (``channels``, ``bins``, ``observed``,
            ``expected``, ``significance`` …) for the expert views.
        check: registered name of the check that produced it.
    """

    quality: Quality
    value: float | None
    threshold: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    check: str = ""

    def __post_init__(self) -> None:
        # Normalise so that results built from numpy values compare and serialise cleanly.
        object.__setattr__(self, "quality", Quality(self.quality))
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (no numpy types, no NaN/inf; ``None`` thresholds dropped)."""
        threshold = {k: v for k, v in to_jsonable(self.threshold).items() if v is not None}
        return {
            "check": self.check,
            "quality": self.quality.name,
            "value": to_jsonable(self.value),
            "threshold": threshold,
            "explanation": self.explanation,
            "details": to_jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Inverse of :meth:`to_dict`; accepts the quality by name or integer."""
        quality = data["quality"]
        quality = Quality[quality] if isinstance(quality, str) else Quality(quality)
        return cls(
            quality=quality,
            value=data.get("value"),
            threshold=dict(data.get("threshold") or {}),
            explanation=str(data.get("explanation", "")),
            details=dict(data.get("details") or {}),
            check=str(data.get("check", "")),
        )


def error_text(error: BaseException) -> str:
    """``"<Type>: <message>"`` of the error that really happened.

    A :class:`~dqm.errors.CheckError` raised by :func:`dqm.checks.run_check` wraps the
    check's own exception (``raise … from error``); the shifter and the expert want the
    original type and message, not the wrapper's.
    """
    original = error.__cause__ if error.__cause__ is not None else error
    message = str(original).strip() or "(no message)"
    return f"{type(original).__name__}: {message}"[:500]


def check_error(check: str, error: BaseException, *, during: str = "") -> CheckResult:
    """The :attr:`Quality.CHECK_ERROR` result standing for a check that raised.

    Args:
        check: the check's registered name (or ``"judging"`` for the whole spill).
        error: what was raised.
        during: what was being done, e.g. ``"gathering the history"`` (optional).

    Returns:
        A result whose explanation names the check and the error (type and message),
        so the wall, ``dqm flags`` and the report all say what broke.
    """
    text = error_text(error)
    what = f"check '{check}'" if check != "judging" else "judging this spill"
    where = f" while {during}" if during else ""
    original = error.__cause__ if error.__cause__ is not None else error
    return CheckResult(
        Quality.CHECK_ERROR,
        None,
        {},
        f"{what} failed{where}: {text}",
        {"error_type": type(original).__name__, "error": text, "during": during},
        check,
    )


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may look at for one spill — and nothing else.

    Attributes:
        histogram: this spill's histogram (Int64 counts), ``None`` if not produced.
        reference: the same histogram summed over a certified reference run (usually
            far more entries: checks compare normalised shapes).
        summary: the spill's summary quantities (``n_events``, ``p_bms_mean`` …).
        history: per-spill series of the same summary keys for the run's previous
            spills, oldest first (the current spill is *not* included). Besides the
            summary keys it may hold ``"spill"`` (the spill numbers) and
            ``"quality.<subsystem>"`` (each spill's stored roll-up, see
            :func:`dqm.core.evaluate.history_series`).
        masked: channel index tuples known to be bad and excluded by channel checks.
        subsystem: the subsystem of the histogram the check is attached to; change
            detection counts a spill as certified when this subsystem was GOOD on it.
        run_start: the same kind of series for the run's *first* spills (up to
            ``HISTORY_SPILLS``), so a baseline anchored on the run's certified start
            does not slide with the history window.
        reference_history: the same kind of series for the spills of the reference
            run, when the reference is a run of this store (``None`` for an imported one).
        histograms: every histogram of this spill by name, for checks that combine
            maps (the per-cell gain divides an energy map by a hit map).
        references: every reference histogram by name (same purpose).
        recent: this histogram in the run's last spills before this one, oldest first
            (``None`` where a spill lacks it); checks that add up spills use it.
        conditions: the run's conditions (:class:`dqm.core.conditions.RunConditions`),
            ``None`` when the DAQ never announced them. Spec parameters written as
            ``"@p_beam_gev"`` are already resolved from them when a check runs.
        model: the learned model (:class:`dqm.learn.LearnedModel`) of this subsystem for
            the run's beam configuration, ``None`` when none is trained (``pca_score``).
    """

    histogram: bh.Histogram | None = None
    reference: bh.Histogram | None = None
    summary: Mapping[str, float] | None = None
    history: Mapping[str, Sequence[float]] | None = None
    masked: frozenset[tuple[int, ...]] = frozenset()
    subsystem: str = ""
    run_start: Mapping[str, Sequence[float]] | None = None
    reference_history: Mapping[str, Sequence[float]] | None = None
    histograms: Mapping[str, bh.Histogram] = field(default_factory=dict)
    references: Mapping[str, bh.Histogram] = field(default_factory=dict)
    recent: tuple[bh.Histogram | None, ...] = ()
    conditions: RunConditions | None = None
    model: Any = None

    def __post_init__(self) -> None:
        # Channel lists arrive from JSON/TOML as lists (or bare ints for 1D maps);
        # membership tests need hashable tuples of ints.
        object.__setattr__(
            self,
            "masked",
            frozenset(
                (int(c),) if isinstance(c, (int, np.integer)) else tuple(int(i) for i in c)
                for c in self.masked
            ),
        )

    def entries(self) -> float | None:
        """Entries that the common ``min_entries`` rule counts.

        The histogram's total (flow bins included) when there is a histogram,
        otherwise the summary's ``n_events``; ``None`` when neither is known.
        """
        if self.histogram is not None:
            return float(np.sum(self.histogram.values(flow=True)))
        if self.summary is not None and "n_events" in self.summary:
            return float(self.summary["n_events"])
        return None


def judged_worst(qualities: Iterable[Quality | int]) -> Quality:
    """Roll-up of a subsystem (or spill, or run): worst of the checks that could judge.

    A check that says NO_DATA lacks what it needs (too few entries, no reference yet,
    a trend baseline still being collected at the start of a run); it neither passes
    nor fails. It must not paint a subsystem grey while its other checks judged it:
    the momentum tile would stay NO_DATA for the first ~20 spills of every run, and a
    shifter learns to ignore grey. So NO_DATA only when *no* check could judge; the
    checks that are waiting stay stored, each with its reason.

    Args:
        qualities: the qualities to roll up.

    Returns:
        The worst of the GOOD/WARNING/BAD ones; NO_DATA when there are none.
    """
    judged = [int(q) for q in qualities if int(q) != int(Quality.NO_DATA)]
    return Quality(max(judged)) if judged else Quality.NO_DATA


def rollup(results: Iterable[tuple[str, CheckResult]]) -> dict[str, Quality]:
    """Quality per subsystem plus ``"overall"``, each the :func:`judged_worst` of its checks.

    Args:
        results: ``(subsystem, result)`` pairs, e.g. ``("ECAL", dead_cells_result)``.

    Returns:
        ``{subsystem: quality, ..., "overall": quality of all}``; with no results
        at all, ``{"overall": NO_DATA}``.
    """
    per_subsystem: dict[str, list[Quality]] = {}
    for subsystem, result in results:
        if subsystem == "overall":
            raise ValueError("'overall' is reserved for the roll-up of all subsystems")
        per_subsystem.setdefault(subsystem, []).append(result.quality)
    rolled = {name: judged_worst(qs) for name, qs in per_subsystem.items()}
    rolled["overall"] = judged_worst(rolled.values())
    return rolled
