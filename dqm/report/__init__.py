"""Output for people and for ROOT: the nightly PDF report and ROOT export.

Reads through ``dqm.store``; renders with matplotlib/mplhep. Must not be imported
by the pure core or by the worker's hot path.
"""
