"""Write ``root_reference.json``: χ² and KS test values computed by ROOT itself.

The DQM's ``dqm.checks.homogeneity`` claims to compute ``TH1::Chi2Test`` and
``TH1::KolmogorovTest`` as ROOT does; ``tests/unit/test_root_conventions.py``
holds it to the numbers this script makes. ROOT is *not* a dependency of the
project: run this with a separate environment that has the PyPI ``root`` wheel::

    python3 -m venv /work/tools/rootvenv
    /work/tools/rootvenv/bin/pip install root numpy
    /work/tools/rootvenv/bin/python tests/data/make_root_reference.py

Every histogram is a ``TH1D`` filled from ``TRandom3`` with fixed seeds, so the
file is reproducible. For each pair the JSON keeps the bin contents with flow
bins (index 0 = underflow), the per-bin Σw² of weighted histograms, and ROOT's
outputs: ``Chi2TestX`` (p, χ², ndf, igood) with the option given, and
``KolmogorovTest`` (probability with the default options, the distance "M").
"""

from __future__ import annotations

import ctypes
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # the wheel announces its alpha status
import ROOT  # noqa: E402

OUT = Path(__file__).with_name("root_reference.json")
ROOT.TH1.AddDirectory(False)


def book(name: str, bins: int = 40, lo: float = 120.0, hi: float = 200.0) -> ROOT.TH1D:
    return ROOT.TH1D(name, name, bins, lo, hi)


def gauss(h, n: int, mean: float, sigma: float, seed: int, weight=None) -> ROOT.TH1D:
    """Fill ``n`` Gaussian values; ``weight(rng)`` gives a weight per entry (weighted fill)."""
    rng = ROOT.TRandom3(seed)
    if weight is not None:
        h.Sumw2()
    for _ in range(n):
        x = rng.Gaus(mean, sigma)
        if weight is None:
            h.Fill(x)
        else:
            h.Fill(x, weight(rng))
    return h


def contents(h) -> dict:
    n = h.GetNbinsX()
    values = [h.GetBinContent(i) for i in range(n + 2)]
    weighted = h.GetSumw2N() > 0
    out = {"values": values, "edges": [h.GetXaxis().GetBinLowEdge(i) for i in range(1, n + 2)]}
    if weighted:
        out["variances"] = [h.GetSumw2().At(i) for i in range(n + 2)]
    return out


def chi2(h1, h2, option: str) -> dict:
    c, ndf, igood = ctypes.c_double(0.0), ctypes.c_int(0), ctypes.c_int(0)
    p = h1.Chi2TestX(h2, c, ndf, igood, option, ROOT.nullptr)
    return {"option": option, "p": p, "chi2": c.value, "ndf": ndf.value, "igood": igood.value}


def ks(h1, h2, option: str = "") -> dict:
    return {
        "option": option,
        "p": h1.KolmogorovTest(h2, option),
        "distance": h1.KolmogorovTest(h2, option + "M"),
    }


def case(name: str, h1, h2, chi2_option: str | None, *, ks_options=("",), note="") -> dict:
    out = {"name": name, "note": note, "h1": contents(h1), "h2": contents(h2)}
    if chi2_option:
        out["chi2"] = [chi2(h1, h2, chi2_option)]
        if "UF" not in chi2_option:
            out["chi2"].append(chi2(h1, h2, chi2_option + " UF OF"))
    out["ks"] = [ks(h1, h2, o) for o in ks_options]
    return out


def normalised(h):
    h = h.Clone(h.GetName() + "_norm")
    h.Sumw2()
    h.Scale(1.0 / h.Integral())
    return h


def main() -> int:
    cases = []
    # unweighted spill against an unweighted reference, same shape
    spill = gauss(book("spill_same"), 5_000, 160.0, 8.0, 1)
    ref = gauss(book("ref_same"), 200_000, 160.0, 8.0, 2)
    cases.append(case("uu_same_shape", spill, ref, "UU", ks_options=("", "U", "O", "UO")))
    # unweighted, shifted by 1.5 %: both tests must see it
    shifted = gauss(book("spill_shift"), 5_000, 162.4, 8.0, 3)
    cases.append(case("uu_shifted", shifted, ref, "UU"))
    # narrow distributions: many bins empty in both, tails with a few entries, flow bins
    narrow = gauss(book("spill_narrow", 60, 150, 170), 800, 160.0, 1.6, 4)
    narrow_ref = gauss(book("ref_narrow", 60, 150, 170), 30_000, 160.0, 1.6, 5)
    cases.append(case("uu_sparse_tails", narrow, narrow_ref, "UU"))
    # a spill partly outside the axis range (underflow and overflow filled)
    wide = gauss(book("spill_flow"), 4_000, 150.0, 25.0, 6)
    wide_ref = gauss(book("ref_flow"), 100_000, 160.0, 20.0, 7)
    cases.append(
        case("uu_with_flow", wide, wide_ref, "UU", ks_options=("", "U", "O", "UO"), note="flow")
    )
    # normalised reference (Sumw2 then Scale(1/integral)): UW, not blind
    cases.append(case("uw_normalised_reference", spill, normalised(ref), "UW"))
    cases.append(case("uw_normalised_reference_shifted", shifted, normalised(ref), "UW"))
    # the same normalised reference with ROOT's UU NORM (effective entries): the counts again
    cases.append(case("uu_norm_option", spill, normalised(ref), "UU NORM"))
    # weighted reference (weights 0.5..1.5), e.g. a reweighted simulation
    weighted = gauss(
        book("ref_weighted"), 50_000, 160.0, 8.0, 8, weight=lambda r: r.Uniform(0.5, 1.5)
    )
    cases.append(case("uw_weighted_reference", spill, weighted, "UW"))
    # a reference smaller than the spill, normalised: ROOT's degenerate-bin branch of UW
    big = gauss(book("spill_big", 30, 130, 190), 20_000, 160.0, 6.0, 9)
    small = normalised(gauss(book("ref_small", 30, 130, 190), 2_000, 160.0, 6.0, 10))
    cases.append(case("uw_reference_smaller_than_spill", big, small, "UW", note="degenerate"))
    # hand-made bins for UW's special branches: a spill bin empty where the (normalised,
    # smaller) reference is not (ROOT then adds an event to the spill), and a reference bin
    # empty where the spill is not (its error becomes one average weight)
    h1, h2 = book("deg1", 6, 0, 6), book("deg2", 6, 0, 6)
    for i, (a, b) in enumerate(
        zip((100, 0, 100, 100, 7, 100), (10, 5, 10, 10, 0, 10), strict=True)
    ):
        h1.SetBinContent(i + 1, a)
        h2.SetBinContent(i + 1, b)
    h1.SetEntries(h1.Integral())
    h2.SetEntries(h2.Integral())
    cases.append(case("uw_degenerate_bins", h1, normalised(h2), "UW", note="degenerate"))
    # both weighted
    w1 = gauss(book("w1"), 8_000, 160.0, 8.0, 11, weight=lambda r: r.Uniform(0.8, 1.2))
    cases.append(case("ww_both_weighted", w1, weighted, "WW"))
    # a single populated bin in both: ndf = 0
    one1, one2 = book("one1"), book("one2")
    for _ in range(50):
        one1.Fill(160.5)
    for _ in range(500):
        one2.Fill(160.5)
    cases.append(case("uu_single_bin", one1, one2, "UU", ks_options=("",)))
    kolmogorov = [
        {"z": z, "p": ROOT.TMath.KolmogorovProb(z)}
        for z in (
            0.0,
            0.1,
            0.19,
            0.2,
            0.5,
            0.754,
            0.755,
            0.8,
            1.0,
            1.2239,
            1.5,
            2.0,
            3.0,
            4.0,
            5.0,
            6.8,
            6.82,
            8.0,
        )  # fmt: skip
    ]
    OUT.write_text(
        json.dumps(
            {
                "root_version": ROOT.gROOT.GetVersion(),
                "made_by": "tests/data/make_root_reference.py",
                "cases": cases,
                "kolmogorov_prob": kolmogorov,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT} ({len(cases)} histogram pairs, ROOT {ROOT.gROOT.GetVersion()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
