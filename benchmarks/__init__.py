"""Benchmarks and load tests, run by ``dqm bench`` and ``dqm loadtest``.

Not part of the shipped library (``dqm``): they import test-only tools such as
Playwright and start private services. ``dqm.commands`` imports them lazily.
"""
