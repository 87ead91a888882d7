"""NA64mu data-quality monitoring.

Layers (each may import only the ones above it; ``tests/unit/test_layers.py`` enforces that
the pure layers import no I/O, plotting or web library and nothing from the shells, that
only ``dqm.store`` imports SQLAlchemy, and the rule on ``apps/`` and ``benchmarks/`` below):

* foundation — ``errors``, ``redact``, ``config`` (settings from the environment),
  ``quality`` (the quality words, re-exported by ``dqm.checks``);
* ``dqm.checks`` — pure check functions, their registry, ``Quality`` and its words;
* ``dqm.core`` — pure: ``events`` (columnar wire format), ``specs``, ``variables``/``fill``
  (boost-histogram filling), ``summary``, ``histio`` (histogram persistence), ``evaluate``,
  ``status`` (a spill's status words);
* ``dqm.sim`` — pure: the spill simulator, anomalies, the detection study (``validate``);
* ``dqm.store`` — every SQL query, as named functions (SQLAlchemy; PostgreSQL, SQLite as
  embedded default): spills, runs, flags, references, expert actions, the pages' frames,
  the report's periods, migrations;
* ``dqm.pipeline`` — I/O shells of the live path: ``stream`` (Redis), ``worker``,
  ``runtime``, ``metrics``, ``services``;
* ``dqm.report`` — the nightly PDF and ROOT export;
* ``dqm.commands`` and ``dqm.cli`` — the ``dqm`` command line.

The library never imports from ``apps/`` (the Panel views) nor from ``benchmarks/``
except when a command hands over to them as it runs: ``dqm serve`` (apps),
``dqm bench``/``dqm loadtest`` (benchmarks).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
