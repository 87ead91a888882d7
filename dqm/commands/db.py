"""``dqm db upgrade|downgrade|current`` — Alembic migrations of the configured database."""

from __future__ import annotations

from dqm.store.migrate import current_revision, downgrade_database, upgrade_database


def add_parser(sub) -> None:
    p = sub.add_parser("db", help="database migrations (Alembic)")
    p.add_argument("action", choices=["upgrade", "downgrade", "current"])
    p.add_argument("revision", nargs="?", help="target revision (default head / base)")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    url = settings.effective_database_url
    if args.action == "upgrade":
        upgrade_database(url, args.revision or "head")
        print(f"database at {current_revision(url)} ({_safe(url)})")
    elif args.action == "downgrade":
        downgrade_database(url, args.revision or "base")
        print(f"database at {current_revision(url)} ({_safe(url)})")
    else:
        print(current_revision(url) or "empty (no migrations applied)")
    return 0


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
