"""The NA64mu spill simulator, its anomaly injections, and the detection study.

Layer: pure (numpy only). ``simulate`` makes spills as the DAQ would send them from the
run's ``settings`` (:class:`~dqm.sim.settings.SimConfig`), with the detectors' response in
``calorimetry`` and the in-control beam ``wander``; ``anomalies`` is the syntax of the faults
a shifter must be told about and ``anomaly_kinds`` what each one does; ``simfile`` reads and
writes simulated runs; ``validate`` measures false alarms and detection delays by running
the real checks on simulated spills (``matrix`` the rows, ``study`` / ``spill_judge`` /
``outcomes`` / ``measures`` the engine, ``validate_targets`` / ``validate_report`` the
verdict and its tables).

Must not: touch Redis or a database (``dqm simulate`` and ``dqm replay`` in
``dqm.commands`` publish what this package makes).
"""
