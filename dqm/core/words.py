"""What a flag means, in the words of a shifter: for the wall, read from across the room.

A check's explanation is written for the expert ("dp_mean: EWMA ≈ 0.532315 … λ = 0.2"):
the statistic, its value, its thresholds. The shifter on the wall needs to know *what*
is wrong in the detector's terms — "Momentum difference p_BMS − p_MS2: drifting over the
last spills" — and what to do (the spec's instruction, shown beside it). The expert's
explanation stays one click away (the tile's link to the expert page).

Layer: pure core.
"""

from __future__ import annotations

__all__ = ["CHECK_WORDS", "plain_words"]

#: what each registered check says when it fires, as a shifter would say it
CHECK_WORDS: dict[str, str] = {
    "ks": "shape differs from the reference run",
    "chi2": "shape differs from the reference run",
    "dead_channels": "dead cells (no hits where the reference has them)",
    "hot_channels": "noisy cells (far more hits than the reference)",
    "cell_gain": "cell energy scale changed",
    "beam_centroid": "beam centre moved",
    "beam_width": "beam width changed",
    "beam_profile": "beam profile changed",
    "ewma": "drifting over the last spills",
    "cusum": "drifting over the last spills",
    "pik_cusum": "more hadrons in the beam over the last spills",
    "pca_score": "unusual pattern: unlike the good spills the model learned",
    "intensity": "beam intensity changed",
    "momentum_scale": "momentum scale off the nominal beam momentum",
    "p_scale": "momentum off the nominal beam momentum",
    "daq_completeness": "detector data missing from events",
    "empty": "no entries",
    "bins_beyond": "shape differs from the reference run",
    "max_pull": "a peak or a hole compared with the reference run",
    "channel_means": "channel gains changed",
    "mean_in_range": "mean out of its range",
    "rms_in_range": "width out of its range",
    "value_in_range": "out of its range",
    "min_entries": "too few entries",
    "noisy_channels": "noisy cells",
    "pik_fraction": "more hadrons (π/K) in the beam than expected",
    "not_updating": "not updating (identical to an earlier spill)",
    "judging": "the DQM could not judge this spill",
    "spill_complete": "spill data incomplete (batches missing)",
    "marker_mismatch": "end-of-spill marker disagrees with the data received",
    "run_conditions": "run conditions missing or unusable",
}


def plain_words(check: str, histogram_title: str | None, quality: str) -> str:
    """One line for the wall: "<what was looked at>: <what is wrong>".

    Args:
        check: the registered check name (``ks``, ``ewma`` …).
        histogram_title: the spec's title of the histogram judged (None: a spill-wide check).
        quality: the flag's quality word; NO_DATA reads "not judged".

    Returns:
        e.g. "Incoming momentum (BMS): drifting over the last spills".
    """
    what = "not judged (no data or no reference)" if quality == "NO_DATA" else None
    what = what or CHECK_WORDS.get(check, check.replace("_", " "))
    return f"{histogram_title}: {what}" if histogram_title else what[:1].upper() + what[1:]
