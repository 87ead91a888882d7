"""I/O shells of the live path: Redis streams, the worker, its metrics, embedded services.

``stream`` (XADD/XREADGROUP/XAUTOCLAIM, dead letters), ``worker`` (the consumer loop:
decode → fill → commit partials with message ids → acknowledge → close spills),
``runtime`` (wiring settings, specs and close hooks), ``metrics`` (Prometheus),
``services`` (a private Redis/PostgreSQL for the demo, tests and benchmarks).

Must not: write SQL (that is ``dqm.store``) or import from ``apps/``.
"""
