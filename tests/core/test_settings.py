"""Every setting is declared once, parsed with one grammar and refused when out of range."""

from __future__ import annotations

import math

import pytest

from efir_pipeline.core.db.checks import Thresholds
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.settings import Settings, specs
from efir_pipeline.core.values import PG_INT_MAX_MS, Duration, parse_duration


def test_defaults_parse_and_every_setting_is_documented():
    defaults = Settings()
    assert defaults.lock_timeout == Duration(30)
    assert defaults.freshness_limit("low") == Duration(26 * 3600)
    assert defaults.change_log_retention == Duration(30 * 86400)
    names = [s.env for s in specs()]
    assert len(names) == len(set(names)), "a variable declared twice"
    assert all(s.doc and s.group and s.kind.grammar for s in specs())
    assert all(n == "DATABASE_URL" or n.startswith("EFIR_") for n in names)


def test_values_come_from_the_environment():
    settings = Settings.from_env(
        {
            "EFIR_FRESHNESS_LIMIT_HIGH": "2min",
            "EFIR_REFRESH_DURATION_LIMIT": "500ms",
            "EFIR_VIEW_SIZE_LIMIT_MB": "10",
            "EFIR_RECONCILIATION_SAMPLE": "5",
            "EFIR_BULK_ROWS": " 250 ",
        }
    )
    thresholds = Thresholds.from_settings(settings)
    assert thresholds.freshness_limits == {"high": 120, "medium": 3600, "low": 93600}
    assert thresholds.duration_limit_seconds == 0.5
    assert thresholds.size_limit_bytes == 10 * 1024 * 1024
    assert thresholds.sample_size == 5
    assert thresholds.rules.bulk_rows == 250


@pytest.mark.parametrize(
    "text", ["30", "30 seconds", "1.5h", "5 min", "500MS", "2d", "1 day"], ids=str
)
def test_one_duration_grammar(text):
    expected = {"30": None, "30 seconds": 30, "1.5h": 5400, "5 min": 300, "500MS": 0.5}
    if text == "30":
        with pytest.raises(ValueError, match="unit"):
            parse_duration(text)
    else:
        assert parse_duration(text).seconds == expected.get(text, parse_duration(text).seconds)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        # PostgreSQL would round 1us to 0, which means "no timeout".
        ("EFIR_LOCK_TIMEOUT", "1us", "not a number and a unit"),
        ("EFIR_STATEMENT_TIMEOUT", "0.1ms", "outside"),
        # Past PostgreSQL's int of milliseconds, SET would fail in the middle of a refresh.
        ("EFIR_STATEMENT_TIMEOUT", "99999999999999s", "outside"),
        ("EFIR_CHECK_STATEMENT_TIMEOUT", "30", "unit"),
        ("EFIR_REFRESH_WAIT_TIMEOUT", "0s", "outside"),
        ("EFIR_ALERT_TIMEOUT", "0", "unit"),
        ("EFIR_ALERT_TIMEOUT", "0s", "outside"),
        ("EFIR_CHANGE_LOG_RETENTION", "forever", "not a number and a unit"),
        ("EFIR_CHANGE_LOG_RETENTION", "5min", "outside"),
        ("EFIR_VIEW_SIZE_LIMIT_MB", "nan", "finite"),
        ("EFIR_VIEW_SIZE_LIMIT_MB", "inf", "finite"),
        ("EFIR_VIEW_SIZE_LIMIT_MB", "big", "not a number"),
        ("EFIR_MEDIUM_LEVEL_FRACTION", "nan", "finite"),
        ("EFIR_MEDIUM_LEVEL_FRACTION", "1.5", "outside"),
        ("EFIR_BULK_ROWS", "99999999999999999999", "outside"),
        ("EFIR_BULK_ROWS", "0", "outside"),
        ("EFIR_RECONCILIATION_SAMPLE", "1e3", "whole number"),
        ("EFIR_NIGHTLY_CRON", "every night", "cron"),
        ("EFIR_NIGHTLY_TZ", "Mars/Olympus", "time zone"),
        ("EFIR_ROLE_APP", "App-Role", "role name"),
        ("EFIR_DAGSTER_URL", "ftp://x", "http"),
        ("EFIR_HIGH_SENSOR_INTERVAL", "30", "unit"),
    ],
)
def test_bad_values_are_config_errors_naming_the_setting(name, value, why):
    with pytest.raises(ConfigError, match=name) as error:
        Settings.from_env({name: value})
    assert why in str(error.value)


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"EFIR_BULK_ROWS": "x", "EFIR_LOCK_TIMEOUT": "y"})
    assert "EFIR_BULK_ROWS" in str(error.value) and "EFIR_LOCK_TIMEOUT" in str(error.value)


def test_secrets_are_never_echoed():
    webhook = "ftp://hooks.example.com/services/T0KEN-SECRET"
    database = "mysql://user:s3cret@host/db"
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"EFIR_ALERT_WEBHOOK_URL": webhook, "DATABASE_URL": database})
    assert "T0KEN" not in str(error.value) and "s3cret" not in str(error.value)
    assert "EFIR_ALERT_WEBHOOK_URL=(hidden)" in str(error.value)


def test_pg_timeouts_reach_postgresql_in_whole_milliseconds():
    assert Settings().lock_timeout.postgres() == "30000ms"
    top = Settings.from_env({"EFIR_STATEMENT_TIMEOUT": f"{PG_INT_MAX_MS}ms"}).statement_timeout
    assert top.milliseconds == PG_INT_MAX_MS
    assert math.isclose(parse_duration("1ms").seconds, 0.001)
