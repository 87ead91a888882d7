"""`dqm flags` text: "(reference run N)" only after flags whose check used the reference."""

from __future__ import annotations

from dqm.commands.flags import _uses_reference


def test_reference_run_is_named_only_for_checks_that_compared_with_it():
    # a shape comparison needs the reference
    assert _uses_reference("ks", "KS distance D = 0.09 against the reference")
    # a cell check that used it says so
    assert _uses_reference("dead_channels", "ECAL cell (2,2): 0 hits — expected from the reference")
    # a momentum scale against the run's nominal, a DAQ count, a π/K CUSUM did not
    assert not _uses_reference("p_scale", "p_ms2_mean = 156.8 GeV, -2.0 % from nominal 160 GeV")
    assert not _uses_reference("daq_completeness", "DAQ completeness 0.000; BMS present in 0 %")
    assert not _uses_reference("pik_cusum", "π/K: 20 hadrons in the last 2 spills")
