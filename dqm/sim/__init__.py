"""The NA64mu spill simulator, its anomaly injections, and the detection study.

Layer: pure (numpy only). ``simulate`` makes spills as the DAQ would send them,
``anomalies`` the faults a shifter must be told about, ``simfile`` reads and writes
simulated runs, ``validate`` measures false alarms and detection delays by
running the real checks on simulated spills.

Must not: touch Redis or a database (``dqm simulate`` and ``dqm replay`` in
``dqm.commands`` publish what this package makes).
"""
