"""Pure core: the event schema, the declarative specs, filling, summaries, persistence format.

Layer: pure. ``events`` (the columnar wire format), ``specs`` (TOML histogram specs),
``variables``/``fill`` (boost-histogram filling), ``summary`` (per-spill numbers),
``histio`` (versioned compact histogram persistence), ``evaluate`` (judging a spill
with the checks; its ``verdict``, the run's ``spill_history`` and the
``conditions_judgement`` are modules of their own), ``numbering`` (run/spill number limits).

Must not: import SQLAlchemy, redis, panel, matplotlib or anything under
``dqm.store``, ``dqm.pipeline``, ``dqm.report``, ``dqm.commands`` (a test enforces it).
Same inputs, same outputs: that is what makes ``dqm recheck`` exact.
"""
