"""Wiring of the I/O shells from one :class:`Settings`: the entry points' shared helpers.

``Store``/``open_store`` live in :mod:`dqm.store.engine`; they are importable from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import redis

from dqm.config import Settings
from dqm.errors import ConfigError
from dqm.logs import LOG_FIELDS, _KeyValueFormatter, setup_logging  # noqa: F401 - re-exported
from dqm.pipeline.stream import connect
from dqm.store.engine import Store, open_store

if TYPE_CHECKING:  # imported where used: `dqm status` needs neither the specs nor the checks
    from dqm.core.specs import SpecSet

__all__ = [
    "Store",
    "open_store",
    "require_redis",
    "effective_redis_url",
    "demo_redis_url",
    "DEMO_REDIS_FILE",
    "load_default_specs",
    "setup_logging",
    "close_hooks",
]


#: While ``dqm demo`` runs, its private Redis's URL is in this file of ``data_dir``.
DEMO_REDIS_FILE = "demo-redis.url"


def demo_redis_url(settings: Settings) -> str:
    """The URL of a running demo's private Redis in ``data_dir``, or "" when none answers.

    Lets ``./run status`` (or a worker started by hand) join the demo with no configuration.
    """
    path = Path(settings.data_dir) / DEMO_REDIS_FILE
    try:
        url = path.read_text().strip()
    except OSError:
        return ""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError):
        return ""
    return url


def effective_redis_url(settings: Settings) -> str:
    """``DQM_REDIS_URL``, else a running demo's private Redis, else ""."""
    return settings.redis_url or demo_redis_url(settings)


def require_redis(settings: Settings) -> redis.Redis:
    url = effective_redis_url(settings)
    if not url:
        raise ConfigError(
            "DQM_REDIS_URL",
            "",
            "a Redis URL such as redis://127.0.0.1:6379/0 (or use 'dqm demo', which starts its own "
            "Redis)",
        )
    return connect(url)


def load_default_specs(settings: Settings) -> SpecSet:
    from dqm.core.specs import load_specs

    return load_specs(settings.specs_path)


def close_hooks(settings: Settings, specs: SpecSet) -> list:
    """Hooks run when a spill closes: the checks → flags.

    Imported here rather than at the top of this module (``dqm status`` imports this module
    and needs no checks), but still when the worker starts — it builds its hooks before
    consuming: a broken import in the checks or the flags store stops the worker at start-up
    with its traceback, never leaves it closing spills that nobody judges.
    """
    from dqm.store.flags import make_close_hook

    return [make_close_hook(settings, specs)]
