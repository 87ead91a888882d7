"""One configuration object: every setting declared, named DQM_*, documented; the
environment parsed into typed values; bad values rejected with what was expected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dqm.config import SETTINGS, Settings, check_database_url, check_redis_url, load_settings
from dqm.errors import ConfigError, DQMError

FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name != "extra"]


def test_every_settings_field_is_declared_with_env_name_and_doc():
    # Given the Settings dataclass and the SETTINGS declaration
    # Then they list the same settings, each with a DQM_ variable named after it and a doc
    assert set(FIELDS) == set(SETTINGS)
    envs = [s.env for s in SETTINGS.values()]
    assert len(set(envs)) == len(envs), "two settings share an environment variable"
    for name, s in SETTINGS.items():
        assert s.env == "DQM_" + name.upper(), name
        assert isinstance(s.doc, str) and len(s.doc.split()) >= 3, f"{name} is not documented"
        assert getattr(Settings(), name) == s.default, name


def test_time_settings_carry_their_unit():
    for name, s in SETTINGS.items():
        if isinstance(s.default, (int, float)) and any(
            w in name for w in ("interval", "timeout", "block", "idle", "after")
        ):
            assert name.endswith(("_s", "_ms")), f"{name} has no unit in its name"


def test_empty_environment_gives_the_embedded_defaults():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.redis_url == "" and settings.database_url == ""
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("dqm.sqlite")
    assert settings.specs_path.name == "histograms" and settings.specs_path.is_dir()


def test_environment_is_parsed_into_typed_values(tmp_path):
    # Given every kind of setting in the environment as strings
    env = {
        "DQM_REDIS_URL": "redis://10.0.0.5:6380/2",
        "DQM_DATABASE_URL": "postgresql+psycopg://dqm@db:5432/dqm",
        "DQM_DATA_DIR": str(tmp_path),
        "DQM_STREAM": "na64:events",
        "DQM_STREAM_MAXLEN": "5000",
        "DQM_READ_COUNT": "32",
        "DQM_BLOCK_MS": "75",
        "DQM_COMMIT_INTERVAL_S": "0.5",
        "DQM_SPILL_TIMEOUT_S": "12",
        "DQM_WEB_PORT": "8080",
        "DQM_SPECS_DIR": str(tmp_path / "specs"),
        "UNRELATED": "ignored",
    }
    # When loaded
    s = load_settings(env)
    # Then each has its declared type and value
    assert s.redis_url == "redis://10.0.0.5:6380/2"
    assert s.database_url == "postgresql+psycopg://dqm@db:5432/dqm"
    assert s.stream == "na64:events"
    assert (s.stream_maxlen, s.read_count, s.block_ms, s.web_port) == (5000, 32, 75, 8080)
    assert all(type(v) is int for v in (s.stream_maxlen, s.read_count, s.block_ms, s.web_port))
    assert s.commit_interval_s == 0.5 and type(s.commit_interval_s) is float
    assert s.spill_timeout_s == 12.0 and type(s.spill_timeout_s) is float
    assert s.specs_path == Path(tmp_path / "specs")
    assert s.effective_database_url == env["DQM_DATABASE_URL"]
    # untouched settings keep their defaults
    assert s.group == SETTINGS["group"].default


def test_empty_variable_means_default_and_overrides_win():
    s = load_settings({"DQM_BLOCK_MS": "", "DQM_STREAM": "from-env"}, stream="from-cli", group=None)
    assert s.block_ms == SETTINGS["block_ms"].default
    assert s.stream == "from-cli"
    assert s.group == SETTINGS["group"].default


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://user:pw@redis.cern.ch:6380",
        "unix:///tmp/redis.sock",
        "redis://127.0.0.1",
    ],
)
def test_good_redis_urls(url):
    assert load_settings({"DQM_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://x", "redis://"),
        ("localhost:6379", "redis://"),
        ("redis://", "a host"),
        ("redis://localhost:abc/0", "numeric port"),
        ("redis://localhost:99999/0", "port"),
    ],
)
def test_bad_redis_url_says_what_was_expected(url, expected):
    with pytest.raises(ConfigError) as info:
        load_settings({"DQM_REDIS_URL": url})
    err = info.value
    assert (err.setting, err.value) == ("DQM_REDIS_URL", url)
    assert "DQM_REDIS_URL" in str(err) and url in str(err)
    assert expected in str(err)


@pytest.mark.parametrize(
    "url", ["sqlite:///tmp/x.sqlite", "postgresql+psycopg://u@h:5432/d", "postgresql://u@h/d"]
)
def test_good_database_urls(url):
    assert check_database_url(url) == url


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://u@h/d", "postgresql+psycopg://"),
        ("mysql+pymysql://u:p@h:3306/d", "sqlite:///"),
        ("not a url", "postgresql+psycopg://"),
        ("postgresql://u@h:abc/d", "numeric port"),
    ],
)
def test_bad_database_url_says_what_was_expected(url, expected):
    with pytest.raises(ConfigError) as info:
        load_settings({"DQM_DATABASE_URL": url})
    assert info.value.setting == "DQM_DATABASE_URL"
    assert "DQM_DATABASE_URL" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(
    "env, value",
    [
        ("DQM_BLOCK_MS", "fast"),
        ("DQM_WEB_PORT", "80.5"),
        ("DQM_STREAM_MAXLEN", "1e5x"),
        ("DQM_COMMIT_INTERVAL_S", "soon"),
        ("DQM_SPILL_TIMEOUT_S", "30s"),
    ],
)
def test_bad_number_names_the_variable(env, value):
    with pytest.raises(ConfigError) as info:
        load_settings({env: value})
    err = info.value
    assert err.setting == env and err.value == value
    assert env in str(err) and repr(value) in str(err)
    kind = type(SETTINGS[env.removeprefix("DQM_").lower()].default).__name__
    assert f"a {kind}" in str(err)


def test_config_error_is_a_dqm_error():
    with pytest.raises(DQMError):
        check_redis_url("http://x", setting="--redis")
    with pytest.raises(ConfigError, match="--redis"):
        check_redis_url("http://x", setting="--redis")
