"""NA64mu data-quality monitoring.

Layers (each may import only the ones above it):

* pure core — ``events`` (columnar batch format), ``specs`` (declarative histogram
  specs), ``variables``/``fill`` (boost-histogram filling), ``summary``, ``histio``
  (versioned compact histogram persistence), ``simulate`` (NA64mu spill generator);
* I/O shells — ``stream`` (Redis streams), ``store`` (SQLAlchemy, PostgreSQL/SQLite),
  ``worker`` (consumer loop), ``services`` (embedded Redis for the demo), ``cli``.

The library never imports from ``apps/`` (the Panel views).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
