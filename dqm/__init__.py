"""NA64mu data-quality monitoring.

Layers (each may import only the ones above it; ``tests/unit/test_layers.py`` enforces it):

* foundation — ``errors``, ``redact``, ``config`` (settings from the environment);
* ``dqm.core`` — pure: ``events`` (columnar wire format), ``specs``, ``variables``/``fill``
  (boost-histogram filling), ``summary``, ``histio`` (histogram persistence), ``evaluate``;
* ``dqm.checks`` — pure check functions and their registry;
* ``dqm.sim`` — pure: the spill simulator, anomalies, the detection study (``validate``);
* ``dqm.store`` — every SQL query (SQLAlchemy; PostgreSQL, SQLite as embedded default):
  spills, flags, references, expert actions, migrations;
* ``dqm.pipeline`` — I/O shells of the live path: ``stream`` (Redis), ``worker``,
  ``runtime``, ``metrics``, ``services``;
* ``dqm.report`` — the nightly PDF and ROOT export;
* ``dqm.commands`` and ``dqm.cli`` — the ``dqm`` command line.

The library never imports from ``apps/`` (the Panel views) nor from ``benchmarks/``
except lazily in the ``dqm bench``/``dqm loadtest`` commands.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
