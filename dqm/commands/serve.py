"""``dqm serve`` — the web apps (control room, expert pages) on one Panel server.

This entry point is the one place where the library hands over to the ``apps``
package (the outermost shell): it is imported lazily here, never by library modules.
One process = one data refresher (and one notifier, :mod:`dqm.pipeline.notify`), however
many browsers are connected; for more viewers run more ``dqm serve`` replicas behind a
proxy (their notifiers take each incident from the outbox once between them).
"""

from __future__ import annotations

import getpass
import importlib
import logging
import signal
import sys

from dqm.pipeline.notify import Notifier
from dqm.pipeline.runtime import load_default_specs, open_store
from dqm.store.migrate import upgrade_database

log = logging.getLogger("dqm.web")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the control room and expert web pages")
    p.add_argument("--host", help="address to bind (default DQM_WEB_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default DQM_WEB_PORT, 5006; 0 = any free port)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="invent a cookie secret and, without DQM_WEB_USERS, a throw-away 'demo' login "
        "(printed)",
    )
    p.add_argument(
        "--poll-s",
        type=float,
        default=2.0,
        help="fallback database poll when no 'spill closed' message arrives (default 2 s)",
    )
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (prompt or stdin) and print its hash for DQM_WEB_USERS, then exit",
    )
    p.set_defaults(func=run)


def _hash_password() -> int:
    auth = importlib.import_module("apps.auth")
    password = (
        getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    )
    print(auth.hash_password(password))
    return 0


def run(args, settings) -> int:
    if args.hash_password:
        return _hash_password()
    auth_mod = importlib.import_module("apps.auth")
    server_mod = importlib.import_module("apps.server")
    datastore_mod = importlib.import_module("apps.datastore")
    auth = auth_mod.auth_config_from_env(demo=args.demo)
    host = args.host or settings.web_host
    port = settings.web_port if args.port is None else args.port
    if port == 0:
        from dqm.pipeline.services import free_port

        port = free_port()
    if not settings.database_url:  # embedded SQLite: make sure the schema exists
        upgrade_database(settings.effective_database_url)
    specs = load_default_specs(settings)
    store = open_store(settings, writer=False)
    datastore = datastore_mod.DataStore(settings, specs, store, poll_s=args.poll_s).start()
    # new incidents, acknowledgements and STALE to the configured targets (own threads)
    notifier = Notifier(settings, store.sessions).start()
    server = server_mod.make_server(datastore, settings, auth, host=host, port=port)
    server.start()
    print(
        f"dqm serve: http://{host}:{server.port}/  (control room: /control_room, expert: /expert)",
        flush=True,
    )
    if auth.demo_login:
        user, password = auth.demo_login
        print(
            f"dqm serve: demo expert login  user '{user}'  password '{password}'  (at /login)",
            flush=True,
        )
    elif not auth.enabled:
        print("dqm serve: no DQM_WEB_USERS set: read-only (nobody can log in to act)", flush=True)
    stop = lambda *_: server.io_loop.asyncio_loop.call_soon_threadsafe(server.io_loop.stop)  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        notifier.stop()
        datastore.stop()
        store.dispose()
    return 0
