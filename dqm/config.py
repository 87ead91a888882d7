"""One configuration object, read from the environment, with embedded defaults.

Settings are declared as data (name, type, default, documentation) so the docs'
table and a test can check that every one is documented. Units live in the names
(``commit_interval_s``, ``block_ms``). No URL set means embedded defaults: a private
real Redis started by :mod:`dqm.pipeline.services` and a SQLite file in ``data_dir``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dqm.errors import ConfigError
from dqm.redact import hide_password

__all__ = [
    "Settings",
    "SETTINGS",
    "Setting",
    "load_settings",
    "check_redis_url",
    "check_database_url",
]


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    doc: str


def _setting(default: Any, doc: str) -> Any:
    """A field of :class:`Settings` with its documentation; its variable is ``DQM_<NAME>``."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; derive variants with ``replace``.

    Each setting is declared once, here: name, type, default and meaning. :data:`SETTINGS`
    (the README's table, the environment variables) is derived from these fields.
    """

    redis_url: str = _setting("", "Redis URL (redis://host:port/db). Empty: start a private Redis.")
    database_url: str = _setting(
        "",
        "SQLAlchemy URL (postgresql+psycopg://… or sqlite:///…). Empty: SQLite in data_dir.",
    )
    data_dir: str = _setting(
        "./dqm-data", "Folder for the embedded SQLite file, Redis socket, reports."
    )
    stream: str = _setting("dqm:events", "Redis stream the DAQ/simulator publishes batches to.")
    group: str = _setting("dqm-workers", "Consumer group shared by all workers.")
    dead_letter_stream: str = _setting(
        "dqm:dead", "Stream receiving malformed input with its reason."
    )
    channel: str = _setting("dqm:spill-closed", "Pub/sub channel announcing closed spills.")
    stream_maxlen: int = _setting(
        2_000,
        "Approximate cap on stream length in messages (~1 MB each). It is the outage buffer: ~180 "
        "nominal spills (~50 min of beam).",
    )
    ledger_margin_s: float = _setting(
        3600.0,
        "The exactly-once ledger keeps message ids this much older than the oldest entry the "
        "stream or a pending list still holds ('dqm prune', the nightly report).",
    )
    rollup_settle_s: float = _setting(
        600.0,
        "Spills closed longer ago than this are summed into their run's histograms "
        "(run_histograms), which the report's day reads instead of each spill's.",
    )
    spill_histograms_keep_days: float = _setting(
        30.0,
        "Per-spill histograms of spills older than this are deleted once their run's sum holds "
        "them, except spills with a WARNING/BAD/CHECK_ERROR flag and reference runs' spills. "
        "0: keep every spill's histograms forever.",
    )
    retention_interval_s: float = _setting(
        600.0,
        "How often the report service ('dqm report --schedule') sums runs and applies the "
        "histogram retention in the background. 0: only 'dqm prune' does.",
    )
    read_count: int = _setting(16, "Messages per XREADGROUP call.")
    block_ms: int = _setting(200, "How long XREADGROUP blocks waiting for messages.")
    commit_interval_s: float = _setting(
        0.25, "A worker commits its partial histograms at least this often."
    )
    claim_idle_ms: int = _setting(
        10_000, "Pending messages idle longer than this are reclaimed from dead consumers."
    )
    spill_timeout_s: float = _setting(
        30.0, "A spill with no news for this long is closed as incomplete."
    )
    specs_dir: str = _setting(
        "", "Folder of histogram spec TOML files. Empty: the shipped histograms/."
    )
    web_host: str = _setting("127.0.0.1", "Address the Panel server binds to.")
    web_port: int = _setting(5006, "Port of the Panel server.")
    stale_after_s: float = _setting(
        60.0, "No spill closed for this long: the control room shows STALE."
    )
    reference_max_age_days: float = _setting(
        90.0, "A reference run set longer ago than this gives a warning with every comparison."
    )
    incident_warning_spills: int = _setting(
        3,
        "A WARNING opens an incident (alarm) once its cause persisted this many spills in a "
        "row; a BAD opens one at once. 1: every WARNING alarms.",
    )
    alarm_repeat_s: float = _setting(
        20.0, "The control room repeats its alarm tone this often while an incident is open."
    )
    notify_webhook_urls: str = _setting(
        "",
        "Comma-separated webhook URLs (Mattermost/Slack incoming webhooks) that get new "
        'incidents, acknowledgements and STALE as JSON {"text": …}. Empty: none.',
    )
    notify_smtp_host: str = _setting(
        "", "SMTP server for e-mail notifications (host or host:port). Empty: no e-mail."
    )
    notify_email_from: str = _setting("na64mu-dqm@localhost", "Sender of notification e-mails.")
    notify_email_to: str = _setting(
        "", "Comma-separated recipients of notification e-mails. Empty: no e-mail."
    )
    notify_min_interval_s: float = _setting(
        30.0,
        "At most one post per target this often; what comes in between is sent together in "
        "the next post (rate limit: nothing is dropped).",
    )
    notify_retries: int = _setting(
        4, "Attempts per post (with doubling back-off from 2 s) before it is logged as failed."
    )
    notify_timeout_s: float = _setting(10.0, "Network timeout of one webhook or SMTP attempt.")
    notify_link_base: str = _setting(
        "",
        "Address of the web pages as people reach them (https://…); notifications link the "
        "incident's expert view under it. Empty: no links.",
    )
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def sqlite_path(self) -> Path:
        return Path(self.data_dir) / "dqm.sqlite"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def specs_path(self) -> Path:
        if self.specs_dir:
            return Path(self.specs_dir)
        return Path(__file__).resolve().parent.parent / "histograms"


#: Every setting: attribute name -> (environment variable, default, documentation), in the
#: order of :class:`Settings` (derived from its fields: nothing to keep in step by hand).
SETTINGS: dict[str, Setting] = {
    f.name: Setting(f"DQM_{f.name.upper()}", f.default, f.metadata["doc"])
    for f in fields(Settings)
    if "doc" in f.metadata
}


def _coerce(name: str, env: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes", "on"}
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ConfigError(env, raw, f"a {type(default).__name__} for {name}") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read every ``DQM_*`` variable; validate URLs; keyword overrides win."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, s in SETTINGS.items():
        if s.env in env and env[s.env] != "":
            values[name] = _coerce(name, s.env, env[s.env], s.default)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.redis_url:
        check_redis_url(settings.redis_url)
    if settings.database_url:
        check_database_url(settings.database_url)
    return settings


def check_redis_url(url: str, setting: str = "DQM_REDIS_URL") -> str:
    """Fail with what we expected if ``url`` is not a usable Redis URL (the password is not
    echoed)."""
    shown = hide_password(url)
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(
            setting, shown, "redis://[user:password@]host:port[/db], rediss://… or unix:///path"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(setting, shown, f"a host, as in redis://127.0.0.1:6379/0{_RESERVED_HINT}")
    try:
        _ = parts.port  # raises ValueError for a non-numeric port
    except ValueError:
        raise ConfigError(
            setting, shown, f"a numeric port, as in redis://127.0.0.1:6379/0{_RESERVED_HINT}"
        ) from None
    return url


#: Why a URL with a generated password often fails to parse.
_RESERVED_HINT = (
    " (a password containing / # ? @ : or % must be percent-encoded; "
    "`openssl rand -hex 24` makes safe ones)"
)


#: A SQLAlchemy database URL, ``dialect[+driver]://[user[:password]@][host][:port][/database][?query]``
#: (the grammar of ``sqlalchemy.engine.make_url``, so what passes here parses there).
_DATABASE_URL = re.compile(
    r"""(?P<name>[\w+]+)://
        (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
        (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
        (?:/(?P<database>[^?]*))?
        (?:\?(?P<query>.*))?$""",
    re.X,
)


def check_database_url(url: str, setting: str = "DQM_DATABASE_URL") -> str:
    """Fail with what we expected if ``url`` is not a PostgreSQL or SQLite SQLAlchemy URL."""
    expected = "postgresql+psycopg://user@host:5432/dbname or sqlite:///path/to/file.sqlite"
    shown = hide_password(url)
    parsed = _DATABASE_URL.match(url)
    if parsed is None:
        raise ConfigError(setting, shown, expected)
    if parsed["port"] is not None and not parsed["port"].isdigit():
        raise ConfigError(setting, shown, f"a numeric port, as in {expected}{_RESERVED_HINT}")
    if parsed["name"].split("+", 1)[0] not in {"postgresql", "sqlite"}:
        raise ConfigError(setting, shown, expected)
    return url
