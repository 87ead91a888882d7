"""Passwords in the service URLs: never echoed, and the recommended ones always parse.

Given the URLs compose builds from POSTGRES_PASSWORD / REDIS_PASSWORD, when a password is
generated the way docs/deployment.md says (hex), then both URLs load as settings; when a
password has URL-reserved characters and the URL does not parse, then the one-line error
names the problem and the fix but never shows the password.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from dqm.config import load_settings
from dqm.errors import ConfigError
from dqm.redact import hide_password

ROOT = Path(__file__).resolve().parents[2]


def urls(password: str) -> dict[str, str]:
    return {
        "DQM_REDIS_URL": f"redis://:{password}@redis:6379/0",
        "DQM_DATABASE_URL": f"postgresql+psycopg://dqm:{password}@postgres:5432/dqm",
    }


def test_hex_passwords_as_the_deployment_docs_recommend_always_parse():
    # Given the recommendation in docs/deployment.md (and docker/README.md)
    assert "openssl rand -hex" in (ROOT / "docs" / "deployment.md").read_text()
    assert "openssl rand -hex" in (ROOT / "docker" / "README.md").read_text()
    for _ in range(20):
        password = secrets.token_hex(24)
        # When compose's URLs carry such a password, then they load with that password
        settings = load_settings(urls(password))
        assert settings.redis_url.endswith(f":{password}@redis:6379/0")


@pytest.mark.parametrize("password", ["Zm9v/YmFy+cXV4=", "has#hash", "q?uery"])
def test_an_unparsable_url_error_does_not_show_the_password(password):
    # Given a base64-style password with URL-reserved characters in the Redis URL
    # When the settings are loaded
    with pytest.raises(ConfigError) as info:
        load_settings(urls(password))
    # Then the error says what is wrong and how to fix it, without the password
    message = str(info.value)
    assert password not in message and password.split("/")[0] not in message
    assert "***" in message and "percent-encoded" in message and "openssl rand -hex" in message


def test_hide_password():
    assert (
        hide_password("postgresql+psycopg://dqm:s3cret@db:5432/dqm")
        == "postgresql+psycopg://dqm:***@db:5432/dqm"
    )
    assert hide_password("redis://:a/b@c@redis:6379/0") == "redis://:***@redis:6379/0"
    assert hide_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert hide_password("sqlite:///data/dqm.sqlite") == "sqlite:///data/dqm.sqlite"
