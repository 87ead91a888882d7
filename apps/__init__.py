"""Panel apps: the control-room wall screen and the expert drill-down pages.

Layer: thin views over ``dqm`` services (the outermost shell). Layout:

* :mod:`apps.datastore` — the one-per-process data refresher (Redis pub/sub + a cheap
  DB change-token poll) publishing an immutable :class:`~apps.snapshot.Snapshot` and a
  version counter that sessions compare; also the read/act gateway of the expert pages;
* :mod:`apps.snapshot` — builds that snapshot from the store (what the wall shows);
* :mod:`apps.queries` — the expert pages' read queries (plain functions of a session);
* :mod:`apps.plot_data`, :mod:`apps.plots` — histogram → column data → the wall's figures;
* :mod:`apps.expert_plots`, :mod:`apps.expert_figures`, :mod:`apps.expert_maps` — the expert
  figures (1D overlay/ratio/significance, a check's series, 2D and cell maps);
* :mod:`apps.control_room` — the wall; :mod:`apps.expert` assembles the expert page (and
  keeps its URL equal to the view) from :mod:`apps.expert_explorer` (+ ``expert_load``,
  ``expert_views``), :mod:`apps.expert_runmap`, :mod:`apps.expert_trends`,
  :mod:`apps.expert_flags` and :mod:`apps.expert_actions`;
* :mod:`apps.auth` — login (password hashes, cookie secret) and the read/act rule;
* :mod:`apps.server` — assembles the pages and serves them (``dqm serve``).

Must not: open database sessions inside widget callbacks (views call the datastore or
:mod:`dqm.store.actions` through the datastore), hold per-user state at module level, or be
imported by ``dqm`` (the library never depends on its views).
"""

__all__: list[str] = []
