"""One configuration object, read from the environment, with embedded defaults.

Settings are declared as data (name, type, default, documentation) so the docs'
table and a test can check that every one is documented. Units live in the names
(``commit_interval_s``, ``block_ms``). No URL set means embedded defaults: a private
real Redis started by :mod:`dqm.pipeline.services` and a SQLite file in ``data_dir``.
"""

from __future__ import annotations

import os
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


#: Every setting: attribute name -> (environment variable, default, documentation).
SETTINGS: dict[str, Setting] = {
    "redis_url": Setting(
        "DQM_REDIS_URL", "", "Redis URL (redis://host:port/db). Empty: start a private Redis."
    ),
    "database_url": Setting(
        "DQM_DATABASE_URL",
        "",
        "SQLAlchemy URL (postgresql+psycopg://… or sqlite:///…). Empty: SQLite in data_dir.",
    ),
    "data_dir": Setting(
        "DQM_DATA_DIR", "./dqm-data", "Folder for the embedded SQLite file, Redis socket, reports."
    ),
    "stream": Setting(
        "DQM_STREAM", "dqm:events", "Redis stream the DAQ/simulator publishes batches to."
    ),
    "group": Setting("DQM_GROUP", "dqm-workers", "Consumer group shared by all workers."),
    "dead_letter_stream": Setting(
        "DQM_DEAD_LETTER_STREAM", "dqm:dead", "Stream receiving malformed input with its reason."
    ),
    "channel": Setting(
        "DQM_CHANNEL", "dqm:spill-closed", "Pub/sub channel announcing closed spills."
    ),
    "stream_maxlen": Setting(
        "DQM_STREAM_MAXLEN",
        2_000,
        "Approximate cap on stream length in messages (~1 MB each). It is the outage buffer: ~180 "
        "nominal spills (~50 min of beam).",
    ),
    "read_count": Setting("DQM_READ_COUNT", 16, "Messages per XREADGROUP call."),
    "block_ms": Setting("DQM_BLOCK_MS", 200, "How long XREADGROUP blocks waiting for messages."),
    "commit_interval_s": Setting(
        "DQM_COMMIT_INTERVAL_S",
        0.25,
        "A worker commits its partial histograms at least this often.",
    ),
    "claim_idle_ms": Setting(
        "DQM_CLAIM_IDLE_MS",
        10_000,
        "Pending messages idle longer than this are reclaimed from dead consumers.",
    ),
    "spill_timeout_s": Setting(
        "DQM_SPILL_TIMEOUT_S", 30.0, "A spill with no news for this long is closed as incomplete."
    ),
    "specs_dir": Setting(
        "DQM_SPECS_DIR", "", "Folder of histogram spec TOML files. Empty: the shipped histograms/."
    ),
    "web_host": Setting("DQM_WEB_HOST", "127.0.0.1", "Address the Panel server binds to."),
    "web_port": Setting("DQM_WEB_PORT", 5006, "Port of the Panel server."),
    "stale_after_s": Setting(
        "DQM_STALE_AFTER_S", 60.0, "No spill closed for this long: the control room shows STALE."
    ),
    "reference_max_age_days": Setting(
        "DQM_REFERENCE_MAX_AGE_DAYS",
        90.0,
        "A reference run set longer ago than this gives a warning with every comparison.",
    ),
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; derive variants with ``replace``."""

    redis_url: str = SETTINGS["redis_url"].default
    database_url: str = SETTINGS["database_url"].default
    data_dir: str = SETTINGS["data_dir"].default
    stream: str = SETTINGS["stream"].default
    group: str = SETTINGS["group"].default
    dead_letter_stream: str = SETTINGS["dead_letter_stream"].default
    channel: str = SETTINGS["channel"].default
    stream_maxlen: int = SETTINGS["stream_maxlen"].default
    read_count: int = SETTINGS["read_count"].default
    block_ms: int = SETTINGS["block_ms"].default
    commit_interval_s: float = SETTINGS["commit_interval_s"].default
    claim_idle_ms: int = SETTINGS["claim_idle_ms"].default
    spill_timeout_s: float = SETTINGS["spill_timeout_s"].default
    specs_dir: str = SETTINGS["specs_dir"].default
    web_host: str = SETTINGS["web_host"].default
    web_port: int = SETTINGS["web_port"].default
    stale_after_s: float = SETTINGS["stale_after_s"].default
    reference_max_age_days: float = SETTINGS["reference_max_age_days"].default
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
    for f in fields(Settings):
        if f.name not in SETTINGS:
            continue
        s = SETTINGS[f.name]
        if s.env in env and env[s.env] != "":
            values[f.name] = _coerce(f.name, s.env, env[s.env], s.default)
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


def check_database_url(url: str, setting: str = "DQM_DATABASE_URL") -> str:
    """Fail with what we expected if ``url`` is not a PostgreSQL or SQLite SQLAlchemy URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    expected = "postgresql+psycopg://user@host:5432/dbname or sqlite:///path/to/file.sqlite"
    shown = hide_password(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(setting, shown, expected) from None
    except ValueError:  # make_url's int() of a non-numeric port
        raise ConfigError(
            setting, shown, f"a numeric port, as in {expected}{_RESERVED_HINT}"
        ) from None
    if parsed.get_backend_name() not in {"postgresql", "sqlite"}:
        raise ConfigError(setting, shown, expected)
    return url
