"""A learned flag's evidence links to the histograms its explanation names (issue 14 item 2).

The ``pca_score`` check is declared on one histogram per subsystem, but what drives its score
are the histograms (and cells) listed in its details: the evidence view offers each of them,
at the flag's run and spill, as a link that opens the expert page on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

from apps.expert_views import flag_html, named_histogram_links


def _flag(details: dict) -> dict:
    return {
        "id": 7,
        "run": 812,
        "spill": 41,
        "subsystem": "calorimeter",
        "histogram": "ecal_vs_hcal",
        "check": "pca_score",
        "quality": "BAD",
        "explanation": "shapes unlike the good spills of mu160",
        "instruction": "",
        "details": details,
        "time": datetime(2026, 12, 2, tzinfo=UTC),
        "acknowledged_by": None,
    }


def _hrefs(text: str) -> list[dict[str, list[str]]]:
    out = []
    for part in text.split('href="')[1:]:
        url = part.split('"', 1)[0].replace("&amp;", "&")
        out.append(parse_qs(urlparse(url).query))
    return out


def test_each_named_histogram_is_a_link_at_the_flags_spill():
    details = {
        "contributions": [
            {"histogram": "ecal_energy_map", "share": 0.62, "bins": ["cell 1/2/2"]},
            {"histogram": "hcal_total", "share": 0.21, "bins": ["120–130 GeV"]},
            {"histogram": "ecal_vs_hcal", "share": 0.1, "bins": []},  # the flag's own: no link
        ]
    }
    text = flag_html(_flag(details))
    links = _hrefs(named_histogram_links(_flag(details)))
    assert [q["histogram"] for q in links] == [["ecal_energy_map"], ["hcal_total"]]
    assert all(q["run"] == ["812"] and q["spill"] == ["41"] for q in links)
    assert "62 %" in text and "Open what drives it" in text


def test_a_flag_without_contributions_has_no_links():
    assert named_histogram_links(_flag({})) == ""
    assert named_histogram_links(_flag({"contributions": [{"share": 0.5}]})) == ""
    assert "Open what drives it" not in flag_html(_flag({"channels": [[3]]}))
