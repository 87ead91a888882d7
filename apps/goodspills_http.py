"""``/goodspills.json`` and ``/goodspills.csv``: the good-spill list over HTTP, for the analysis.

Same selection words and same output as ``dqm goodspills`` (:mod:`dqm.core.goodspill_query`):
``?runs=12-40&subsystems=beam,momentum&since=…&until=…&revision=…``; ``/goodspills.json``
gives both lists and the version, ``?format=golden`` only the certified ``{run: ranges}``.
Reading is open, like every page. The query runs in a worker thread, so a slow database
never stalls the pages served by the same event loop; a bad parameter is a 400 with the
reason, a database that cannot answer a 503.
"""

from __future__ import annotations

import asyncio
import logging

from tornado.web import RequestHandler

from dqm.core.goodspill_query import parse_query
from dqm.errors import ConfigError
from dqm.store.signoff import good_spills

__all__ = ["GoodSpillsHandler", "goodspill_routes"]

log = logging.getLogger("dqm.web")
_TYPES = {"json": "application/json", "golden": "application/json", "csv": "text/csv"}


class GoodSpillsHandler(RequestHandler):
    """GET the good-spill list in the format of the route (json or csv)."""

    def initialize(self, datastore, fmt: str) -> None:
        self.datastore = datastore
        self.fmt = fmt

    async def get(self) -> None:
        arg = self.get_argument
        fmt = "golden" if self.fmt == "json" and arg("format", "") == "golden" else self.fmt
        try:
            query = parse_query(
                runs=arg("runs", ""),
                subsystems=arg("subsystems", ""),
                since=arg("since", ""),
                until=arg("until", ""),
                revision=arg("revision", ""),
            )
        except ConfigError as exc:
            self.set_status(400)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"bad request: {exc}\n")
            return
        loop = asyncio.get_running_loop()
        try:
            good = await loop.run_in_executor(
                None, lambda: self.datastore.read(lambda s: good_spills(s, **query.store_kwargs()))
            )
        except Exception:  # noqa: BLE001 - the web server keeps serving; the log has the cause
            log.exception("good-spill list could not be read")
            self.set_status(503)
            self.finish("the good-spill list could not be read from the database; try again\n")
            return
        self.set_header("Content-Type", f"{_TYPES[fmt]}; charset=utf-8")
        self.set_header("X-DQM-Goodspills-Version", good.version)
        if fmt == "csv":
            name = f"goodspills-{good.version}.csv"
            self.set_header("Content-Disposition", f'inline; filename="{name}"')
        self.finish(good.render(fmt))


def goodspill_routes(datastore) -> list[tuple]:
    """Tornado routes for :func:`panel.serve`'s ``extra_patterns``."""
    return [
        (r"/goodspills\.json", GoodSpillsHandler, {"datastore": datastore, "fmt": "json"}),
        (r"/goodspills\.csv", GoodSpillsHandler, {"datastore": datastore, "fmt": "csv"}),
    ]
