"""The χ² and KS tests give ROOT's own numbers (``tests/data/root_reference.json``).

The file was written by ROOT 6 itself (``tests/data/make_root_reference.py``, run in a
separate environment with the PyPI ``root`` wheel: ROOT is not a project dependency).
Each case is a pair of ``TH1D`` with ROOT's ``Chi2TestX`` and ``KolmogorovTest``
outputs; here the same bin contents go through :mod:`dqm.checks.homogeneity` and,
for the options the DQM uses, through the ``chi2``/``ks`` checks on boost-histograms.
"""

from __future__ import annotations

import json
from pathlib import Path

import boost_histogram as bh
import numpy as np
import pytest

from dqm.checks import CheckContext, Quality, run_check
from dqm.checks.homogeneity import chi2_test, kolmogorov_prob, ks_test
from dqm.checks.stats import effective_counts

DATA = json.loads((Path(__file__).parents[1] / "data" / "root_reference.json").read_text())
CASES = {c["name"]: c for c in DATA["cases"]}
REL = 1e-6  # the brief's tolerance; most agree to 1e-12


def _bins(h: dict, under: bool, over: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Contents (and variances) of the bins a ROOT option compares: in range ± flow."""
    sl = slice(0 if under else 1, None if over else -1)
    values = np.asarray(h["values"])[sl]
    variances = np.asarray(h["variances"])[sl] if "variances" in h else None
    return values, variances


CHI2 = [(name, i) for name, c in CASES.items() for i in range(len(c.get("chi2", [])))]
KS = [(name, i) for name, c in CASES.items() for i in range(len(c["ks"]))]


@pytest.mark.parametrize(("name", "i"), CHI2, ids=[f"{n}-{i}" for n, i in CHI2])
def test_chi2_test_gives_roots_chi2_ndf_igood_and_p(name: str, i: int) -> None:
    # Given ROOT's Chi2TestX of a histogram pair with one of its options
    case, root = CASES[name], CASES[name]["chi2"][i]
    option = root["option"].split()
    flow = "UF" in option
    n1, v1 = _bins(case["h1"], flow, flow)
    n2, v2 = _bins(case["h2"], flow, flow)
    # When the DQM's test runs on the same bins in the same mode
    if "NORM" in option:  # UU on effective entries (the normalised histogram's counts)
        n2, v2 = effective_counts(n2, v2), None
    mode = option[0]
    result = chi2_test(
        n1, n2, var1=v1 if mode == "WW" else None, var2=v2 if mode in ("UW", "WW") else None
    )
    # Then χ², ndf, ROOT's quality code and the p-value are ROOT's
    assert result.mode == mode
    assert result.ndf == root["ndf"]
    assert result.igood == root["igood"]
    assert result.chi2 == pytest.approx(root["chi2"], rel=REL, abs=1e-12)
    assert result.p_value == pytest.approx(root["p"], rel=REL, abs=1e-300)


@pytest.mark.parametrize(("name", "i"), KS, ids=[f"{n}-{i}" for n, i in KS])
def test_ks_test_gives_roots_distance_and_probability(name: str, i: int) -> None:
    case, root = CASES[name], CASES[name]["ks"][i]
    under, over = "U" in root["option"], "O" in root["option"]
    n1, v1 = _bins(case["h1"], under, over)
    n2, v2 = _bins(case["h2"], under, over)
    result = ks_test(n1, n2, var1=v1, var2=v2)
    assert result.distance == pytest.approx(root["distance"], rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(root["p"], rel=REL, abs=1e-12)


@pytest.mark.parametrize("point", DATA["kolmogorov_prob"], ids=lambda p: f"z={p['z']}")
def test_kolmogorov_prob_is_tmath_kolmogorovprob(point: dict) -> None:
    assert kolmogorov_prob(point["z"]) == pytest.approx(point["p"], rel=1e-12, abs=1e-15)


def _histograms(case: dict) -> tuple[bh.Histogram, bh.Histogram]:
    """The case as the DQM holds it: the spill as Int64 counts, the reference as stored."""
    edges = np.asarray(case["h1"]["edges"])
    axis = bh.axis.Regular(len(edges) - 1, edges[0], edges[-1])
    spill = bh.Histogram(axis, storage=bh.storage.Int64())
    spill.view(flow=True)[...] = np.asarray(case["h1"]["values"]).astype(np.int64)
    ref_data = case["h2"]
    if "variances" in ref_data:
        ref = bh.Histogram(axis, storage=bh.storage.Weight())
        ref.view(flow=True).value = ref_data["values"]
        ref.view(flow=True).variance = ref_data["variances"]
    else:
        ref = bh.Histogram(axis, storage=bh.storage.Int64())
        ref.view(flow=True)[...] = np.asarray(ref_data["values"]).astype(np.int64)
    return spill, ref


CHECKED = [
    "uu_same_shape",
    "uu_shifted",
    "uu_sparse_tails",
    "uw_normalised_reference",
    "uw_normalised_reference_shifted",
    "uw_weighted_reference",
    "uw_degenerate_bins",
]


@pytest.mark.parametrize("name", CHECKED)
def test_chi2_and_ks_checks_report_roots_p_values_also_against_a_normalised_reference(
    name: str,
) -> None:
    # Given a spill and a reference — counts, normalised (Sumw2 + Scale) or weighted
    case = CASES[name]
    spill, ref = _histograms(case)
    context = CheckContext(spill, ref)
    # When the shape checks run (no bin merging: ROOT's plain test)
    chi2 = run_check("chi2", context, {"min_expected": 0.0, "min_entries": 0})
    ks = run_check("ks", context, {"min_entries": 0})
    # Then their values are ROOT's p-values: a normalised reference is not blind (p = 1)
    root_chi2 = case["chi2"][0]
    assert chi2.details["mode"] == root_chi2["option"]
    assert chi2.value == pytest.approx(root_chi2["p"], rel=REL, abs=1e-300)
    assert ks.value == pytest.approx(case["ks"][0]["p"], rel=REL, abs=1e-12)
    if "shifted" in name:
        assert chi2.quality is Quality.BAD and ks.quality is Quality.BAD


def test_a_normalised_reference_without_errors_is_refused_with_the_reason() -> None:
    # Given a reference normalised without Sumw2: contents 0..1, no variances
    spill, _ = _histograms(CASES["uu_same_shape"])
    ref = bh.Histogram(spill.axes[0], storage=bh.storage.Double())
    ref.view(flow=True)[...] = np.asarray(CASES["uu_same_shape"]["h2"]["values"]) / 2e5
    # Then every shape check refuses it (a CHECK_ERROR when judged), saying why
    from dqm.core.evaluate import judge_check
    from dqm.errors import CheckError

    for name in ("chi2", "ks", "max_pull", "bins_beyond"):
        with pytest.raises(CheckError, match="no variances"):
            run_check(name, CheckContext(spill, ref))
        result = judge_check(name, CheckContext(spill, ref))
        assert result.quality is Quality.CHECK_ERROR
        assert name in result.explanation and "statistical errors are unknown" in (
            result.explanation
        )
