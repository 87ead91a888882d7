"""``dqm db upgrade|downgrade|current|check|backup`` — migrations and backups of the configured
database.

``check`` is the services' health check: exit 0 only if the database answers and its schema
is at head (what every dqm service needs), else one line and exit 1.
"""

from __future__ import annotations

from dqm.redact import hide_password
from dqm.store.migrate import current_revision, downgrade_database, head_revision, upgrade_database


def add_parser(sub) -> None:
    p = sub.add_parser("db", help="database migrations (Alembic) and backups")
    p.add_argument("action", choices=["upgrade", "downgrade", "current", "check", "backup"])
    p.add_argument(
        "target",
        nargs="?",
        metavar="REV|FILE",
        help="upgrade/downgrade: target revision (default head / base); "
        "backup: output file (default dqm-backup-<time>.sqlite or .dump)",
    )
    p.set_defaults(func=run)


def run(args, settings) -> int:
    import logging

    logging.getLogger("alembic.runtime.plugins").setLevel(
        logging.WARNING
    )  # "setup plugin …" ×7: noise
    url = settings.effective_database_url
    if args.action == "upgrade":
        upgrade_database(url, args.target or "head")
        print(f"database at {current_revision(url)} ({hide_password(url)})")
    elif args.action == "downgrade":
        downgrade_database(url, args.target or "base")
        print(f"database at {current_revision(url)} ({hide_password(url)})")
    elif args.action == "backup":
        from dqm.store.backup import backup_database, default_backup_name

        dest = backup_database(url, args.target or default_backup_name(url))
        restore = (
            "pg_restore --clean --if-exists --no-owner -d <database> "
            if not url.startswith("sqlite")
            else "stop the services, copy it over "
        ) + str(dest)
        print(
            f"backed up {hide_password(url)} to {dest} ({dest.stat().st_size:,d} bytes); restore: "
            f"{restore}"
        )
    elif args.action == "check":
        return _check(url)
    else:
        print(current_revision(url) or "empty (no migrations applied)")
    return 0


def _check(url: str) -> int:
    from sqlalchemy.exc import OperationalError

    try:
        current = current_revision(url)
    except OperationalError as exc:
        print(f"database {hide_password(url)} unreachable: {str(exc.orig).strip().splitlines()[0]}")
        return 1
    head = head_revision()
    if current != head:
        print(
            f"database {hide_password(url)} at {current or 'no schema'}, expected {head}: run 'dqm "
            "db upgrade'"
        )
        return 1
    print(f"database {hide_password(url)} ok at {head}")
    return 0
