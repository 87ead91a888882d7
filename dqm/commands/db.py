"""``dqm db upgrade|downgrade|current|backup`` — migrations and backups of the configured database."""

from __future__ import annotations

from dqm.store.migrate import current_revision, downgrade_database, upgrade_database


def add_parser(sub) -> None:
    p = sub.add_parser("db", help="database migrations (Alembic) and backups")
    p.add_argument("action", choices=["upgrade", "downgrade", "current", "backup"])
    p.add_argument("target", nargs="?", metavar="REV|FILE",
                   help="upgrade/downgrade: target revision (default head / base); "
                        "backup: output file (default dqm-backup-<time>.sqlite or .dump)")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    url = settings.effective_database_url
    if args.action == "upgrade":
        upgrade_database(url, args.target or "head")
        print(f"database at {current_revision(url)} ({_safe(url)})")
    elif args.action == "downgrade":
        downgrade_database(url, args.target or "base")
        print(f"database at {current_revision(url)} ({_safe(url)})")
    elif args.action == "backup":
        from dqm.store.backup import backup_database, default_backup_name

        dest = backup_database(url, args.target or default_backup_name(url))
        restore = ("pg_restore --clean --if-exists --no-owner -d <database> " if not url.startswith("sqlite")
                   else "stop the services, copy it over ") + str(dest)
        print(f"backed up {_safe(url)} to {dest} ({dest.stat().st_size:,d} bytes); restore: {restore}")
    else:
        print(current_revision(url) or "empty (no migrations applied)")
    return 0


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
