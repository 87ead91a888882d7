"""I/O shells of the live path: Redis streams, the worker, its metrics, embedded services.

``stream`` (XADD/XREADGROUP/XAUTOCLAIM, dead letters), ``worker`` (the consumer loop:
decode → fill → commit partials with message ids → acknowledge → close spills), split into
``state`` (what it holds, each piece with its invariant), ``intake`` (messages into the group
in hand), ``settle`` (acks, dead letters and closes owed by stored groups) and ``closing``,
``runtime`` (wiring settings, specs and close hooks), ``metrics`` (Prometheus),
``services`` (a private Redis/PostgreSQL for the demo, tests and benchmarks).

Must not: write SQL (that is ``dqm.store``) or import from ``apps/``.
"""
