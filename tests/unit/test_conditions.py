"""Run conditions: the message's encoder and validating decoder, the beam configuration
derived from them, and spec parameters that take their value from them ("@p_beam_gev").

Given conditions as a DAQ would announce them, when they are encoded and decoded, then
they come back equal; when one field is wrong, then the decoder refuses with reason
``bad-conditions`` and a detail naming that field. Given a spec parameter written as a
reference to a condition, then it resolves to the run's value, a misspelt name fails at
load time with the file, line and key, and a run without conditions makes the check
NO_DATA "no run conditions received" — never an error.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from dqm.checks import Quality, validate_check_params
from dqm.core.conditions import (
    MAX_PAYLOAD_BYTES,
    RunConditions,
    UnresolvedCondition,
    beam_config_name,
    conditions_from_dict,
    decode_conditions,
    encode_conditions,
    parse_reference,
    resolve_params,
)
from dqm.core.evaluate import NO_CONDITIONS, conditions_judgement, with_conditions
from dqm.core.specs import load_specs
from dqm.errors import BatchError, SpecError

ROOT = Path(__file__).resolve().parents[2]

NOMINAL = {
    "version": 1,
    "run": 42,
    "beam_particle": "mu-",
    "p_beam_gev": 160.0,
    "polarity": "-",
    "mbpl_field_integral_tm": 7.2,
    "trigger": "physics-2025-v3",
    "setup": "2025B-2MBPL",
}


def conditions(**changes) -> RunConditions:
    return conditions_from_dict({**NOMINAL, **changes})


def refused(doc) -> str:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(BatchError) as info:
        decode_conditions(payload)
    assert info.value.reason == "bad-conditions"
    return info.value.detail


# --- encoding ------------------------------------------------------------------------------


def test_round_trip_gives_equal_conditions_and_the_same_bytes():
    c = conditions(extra={"n_mbpl": 2, "run_type": "physics", "beam_file": True})
    payload = encode_conditions(c)
    back = decode_conditions(payload)
    assert back == c and back.to_dict() == c.to_dict()
    assert encode_conditions(back) == payload  # canonical: sorted keys, no spaces
    assert json.loads(payload)["version"] == 1


@pytest.mark.parametrize(
    ("particle", "p", "name"),
    [
        ("mu-", 160.0, "mu160"),  # what every run was stored as: still the same name
        ("mu-", 100.0, "mu100"),
        ("mu+", 160.0, "mu+160"),
        ("pi-", 100.0, "pi100"),
        ("e-", 100.0, "e100"),
        ("mu-", 160.04, "mu160"),  # a nominal setting, to 0.1 GeV
        ("mu-", 99.5, "mu99.5"),
    ],
)
def test_beam_configuration_names(particle, p, name):
    assert beam_config_name(particle, p) == name
    assert conditions(beam_particle=particle, p_beam_gev=p).beam_config == name


@pytest.mark.parametrize("spelling", ["mu-", "MU-", "μ-", "μ⁻", "mu−", " mu- "])
def test_particle_spellings_are_normalised(spelling):
    assert conditions(beam_particle=spelling).beam_particle == "mu-"


def test_polarity_words_are_normalised_and_described():
    c = conditions(polarity="negative")
    assert c.polarity == "-" and c.polarity_sign == -1
    assert c.describe() == (
        "μ⁻ 160 GeV · MBPL 7.2 T·m (polarity −) · trigger physics-2025-v3 · setup 2025B-2MBPL"
    )


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"version": 2}, "schema version 2; this DQM reads version 1"),
        ({"version": True}, "schema version True"),
        ({"p_beam_gve": 160.0}, "unknown field 'p_beam_gve' (did you mean 'p_beam_gev'?)"),
        ({"run": -1}, "'run' = -1"),
        ({"run": "42"}, "'run' = '42'"),
        ({"beam_particle": "muon"}, "'beam_particle' = 'muon'"),
        ({"beam_particle": "mu"}, "did you mean 'mu-'?"),
        ({"beam_particle": ["mu-"]}, "'beam_particle' = ['mu-']"),
        ({"p_beam_gev": "160"}, "'p_beam_gev' = '160': expected a finite number"),
        ({"p_beam_gev": True}, "'p_beam_gev' = True"),
        ({"p_beam_gev": 0}, "'p_beam_gev' = 0 outside [1, 450]"),
        ({"p_beam_gev": 1e6}, "outside [1, 450]"),
        ({"polarity": "north"}, "'polarity' = 'north': expected '+' or '-'"),
        ({"polarity": -1}, "'polarity' = -1"),
        ({"mbpl_field_integral_tm": -7.2}, "'mbpl_field_integral_tm' = -7.2 outside [0, 50]"),
        ({"trigger": ""}, "'trigger' = '': expected a non-empty string"),
        ({"setup": "x" * 200}, "'setup': at most 128 printable characters"),
        ({"setup": "line\nbreak"}, "'setup': at most 128 printable characters"),
        ({"extra": [1, 2]}, "'extra' must be an object"),
        ({"extra": {"k": {"nested": 1}}}, "'extra' item 'k'"),
    ],
)
def test_each_bad_field_is_refused_by_name(change, named):
    assert named in refused({**NOMINAL, **change})


def test_missing_fields_are_named():
    doc = {k: v for k, v in NOMINAL.items() if k not in ("polarity", "setup")}
    assert refused(doc) == "missing field(s): polarity, setup"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b"", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"p_beam_gev": NaN}', "NaN is not a number JSON allows"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), f"at most {MAX_PAYLOAD_BYTES}"),
    ],
)
def test_payloads_that_are_not_conditions_are_refused(payload, named):
    assert named in refused(payload)
    with pytest.raises(BatchError, match="no 'payload'"):
        decode_conditions(None)


def test_the_dataclass_validates_too():
    with pytest.raises(BatchError, match="beam_particle"):
        RunConditions(42, "graviton", 160.0, "-", 1.5, "t", "s")


def test_differences_name_what_changed_and_ignore_run_and_extra():
    a = conditions()
    assert a.differences(conditions(run=43, extra={"note": "x"})) == []
    assert a.differences(conditions(mbpl_field_integral_tm=7.25)) == []  # within 1 %
    diffs = conditions(p_beam_gev=100.0, polarity="+", mbpl_field_integral_tm=3.6).differences(a)
    assert diffs == [
        "beam μ⁻ 100 GeV vs μ⁻ 160 GeV",
        "MBPL polarity + vs -",
        "MBPL 3.6 vs 7.2 T·m",
    ]
    assert conditions(trigger="beam").differences(a) == ["trigger 'beam' vs 'physics-2025-v3'"]


# --- spec parameters from the conditions ---------------------------------------------------


def test_references_parse_and_resolve_with_their_factor():
    assert parse_reference("@p_beam_gev") == ("p_beam_gev", 1.0)
    assert parse_reference(" @p_beam_gev * 0.0125 ") == ("p_beam_gev", 0.0125)
    assert parse_reference("2 * @mbpl_field_integral_tm") == ("mbpl_field_integral_tm", 2.0)
    assert parse_reference(160.0) is None and parse_reference("p_bms_mean") is None
    resolved = resolve_params(
        {"nominal_gev": "@p_beam_gev", "bad": "@p_beam_gev * 0.0125", "key": "p_bms_mean"},
        conditions(p_beam_gev=100.0),
    )
    assert resolved == {"nominal_gev": 100.0, "bad": 1.25, "key": "p_bms_mean"}
    assert resolve_params({"q": "@beam_charge"}, conditions(beam_particle="mu+")) == {"q": 1.0}
    with pytest.raises(UnresolvedCondition, match="nominal_gev"):
        resolve_params({"nominal_gev": "@p_beam_gev"}, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@p_beam_gve", "unknown run condition '@p_beam_gve'; did you mean '@p_beam_gev'?"),
        ("@p_beam_gev + 1", "is not a run-condition reference"),
        ("@", "is not a run-condition reference"),
    ],
)
def test_malformed_references_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_reference(text)


def test_deferred_parameters_skip_type_and_order_checks_until_resolved():
    params = {"nominal_gev": "@p_beam_gev", "rel_warning": 0.02, "rel_bad": 0.01}
    with pytest.raises(SpecError, match="rel_warning=0.02 must be <= rel_bad=0.01"):
        validate_check_params("p_scale", params, deferred=frozenset({"nominal_gev"}))
    ok = validate_check_params(
        "momentum_scale",
        {"dp_mean_warning_gev": "@p_beam_gev * 0.01", "dp_mean_bad_gev": 0.5},
        deferred=frozenset({"dp_mean_warning_gev"}),
    )
    assert ok["dp_mean_warning_gev"] == "@p_beam_gev * 0.01"
    with pytest.raises(SpecError, match="only number parameters"):
        validate_check_params("p_scale", {"key": "@p_beam_gev"}, deferred=frozenset({"key"}))


def spec_copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "specs"
    shutil.copytree(ROOT / "histograms", folder)
    path = folder / "momentum.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return folder


def test_a_misspelt_condition_in_a_spec_fails_with_file_line_and_key(tmp_path):
    folder = spec_copy(tmp_path, 'nominal_gev = "@p_beam_gev"', 'nominal_gev = "@p_beam_gve"')
    with pytest.raises(SpecError) as info:
        load_specs(folder)
    message = str(info.value)
    line = next(
        i
        for i, text in enumerate((folder / "momentum.toml").read_text().splitlines(), 1)
        if "@p_beam_gve" in text
    )
    assert f"momentum.toml:{line}, histogram 'p_bms', key 'nominal_gev'" in message
    assert "did you mean '@p_beam_gev'?" in message


def test_a_condition_for_a_text_parameter_fails_at_load_time(tmp_path):
    folder = spec_copy(tmp_path, 'key = "p_bms_mean"', 'key = "@p_beam_gev"')
    with pytest.raises(SpecError, match="key 'key'.*only number parameters"):
        load_specs(folder)


def test_shipped_specs_take_every_nominal_momentum_from_the_conditions(specs):
    refs = {
        (h.name, c.type, k): v
        for h in specs
        for c in h.checks
        for k, v in c.params.items()
        if isinstance(v, str) and "@" in v
    }
    assert refs[("p_bms", "p_scale", "nominal_gev")] == "@p_beam_gev"
    assert refs[("p_ms2", "p_scale", "nominal_gev")] == "@p_beam_gev"
    assert refs[("dp", "momentum_scale", "dp_mean_bad_gev")] == "@p_beam_gev * 0.0125"
    # and no momentum check keeps a number near 160 GeV
    for h in specs:
        for c in h.checks:
            for k, v in c.params.items():
                if k.endswith("_gev") and isinstance(v, float):
                    assert not math.isclose(v, 160.0), (h.name, c.type, k)


def test_without_conditions_a_check_that_needs_them_says_no_data_never_an_error():
    result = with_conditions("p_scale", {"nominal_gev": "@p_beam_gev"}, None)
    assert result.quality is Quality.NO_DATA and result.explanation.startswith(NO_CONDITIONS)
    reason = "no reference for mu100 (an expert certifies one: dqm reference set RUN)"
    result = with_conditions("ks", {}, conditions(p_beam_gev=100.0), no_reference=reason)
    assert result.quality is Quality.NO_DATA and result.explanation == reason
    assert with_conditions("p_scale", {"nominal_gev": 3.0}, None) == {"nominal_gev": 3.0}


def test_the_daq_is_told_about_missing_conditions_and_a_reference_under_others():
    missing = conditions_judgement(None, None)
    assert missing.subsystem == "daq" and missing.check == "run_conditions"
    assert missing.result.quality is Quality.WARNING
    assert NO_CONDITIONS in missing.result.explanation and "DAQ expert" in missing.instruction
    assert conditions_judgement(conditions(), None) is None  # reference conditions unknown
    assert conditions_judgement(conditions(), conditions(run=1)) is None
    other = conditions_judgement(conditions(), conditions(run=1, mbpl_field_integral_tm=3.6))
    assert other.check == "reference_conditions" and other.result.quality is Quality.WARNING
    assert "MBPL 7.2 vs 3.6 T·m" in other.result.explanation
