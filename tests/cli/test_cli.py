"""The command line: exit codes and one-line errors people can act on."""

from __future__ import annotations

import json

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from tests.support.commands import run_cli
from tests.support.factories import add_versions, age_changes, refresh_all
from tests.support.waiting import turn_held


def test_unknown_view_exits_2_listing_the_known_ones_before_touching_the_database():
    # An unreachable URL proves nothing was executed: the name check comes first.
    result = run_cli("refresh", "mv_nope", url="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mv_nope" in lines[0]
    assert all(name in lines[0] for name in catalog.view_names())


@pytest.mark.parametrize(
    "url", ["mysql://x@localhost/db", "postgresql://x@localhost:notaport/db", "nonsense"]
)
def test_malformed_url_is_a_clear_error(url):
    result = run_cli("info", url=url)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_password_is_never_echoed():
    result = run_cli("info", url="mysql://user:s3cret@localhost/db")
    assert "s3cret" not in result.stderr


def test_unreachable_database_names_the_host():
    result = run_cli("info", url="postgresql://postgres@127.0.0.1:1/efir")
    assert result.returncode == 3
    assert "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


def test_missing_migrations_say_what_to_run(make_database):
    url = make_database(migrated=False)
    result = run_cli("refresh", url=url)
    assert result.returncode == 4
    assert "efir-pipeline db upgrade" in result.stderr


def test_refresh_and_info_json(db_url, conn):
    result = run_cli("refresh", url=db_url)
    assert result.returncode == 0, result.stderr
    assert "mv_kpi_dashboard" in result.stdout and "success" in result.stdout
    info = run_cli("info", "--json", url=db_url)
    assert info.returncode == 0, info.stderr
    rows = json.loads(info.stdout)
    assert [r["view"] for r in rows] == [v.name for v in catalog.resolve_views()]
    for row in rows:
        for key in (
            "row_count",
            "size_bytes",
            "populated",
            "last_refresh_at",
            "last_refresh_seconds",
            "oldest_unreflected_change_at",
        ):
            assert key in row
        assert row["populated"] is True and row["last_refresh_at"] is not None


def test_refresh_exit_status_is_1_when_a_view_fails(db_url, conn):
    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE efir_budget.budget_consolidations IN ACCESS EXCLUSIVE MODE")
        result = run_cli(
            "refresh", "mv_budget_consolidation", url=db_url, EFIR_LOCK_TIMEOUT="100ms"
        )
        holder.rollback()
    assert result.returncode == 1
    assert "failed" in result.stdout


def test_bad_timeout_setting_is_refused(db_url):
    result = run_cli("refresh", url=db_url, EFIR_STATEMENT_TIMEOUT="1; DROP TABLE x")
    assert result.returncode == 2
    assert "EFIR_STATEMENT_TIMEOUT" in result.stderr


@pytest.mark.parametrize("command", [("db", "upgrade"), ("db", "current"), ("prepare",)])
def test_migration_commands_name_an_unreachable_host_too(command):
    result = run_cli(*command, url="postgresql://postgres@127.0.0.1:1/efir")
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_revision_is_bad_usage(db_url):
    result = run_cli("db", "downgrade", "nonsense", url=db_url)
    assert result.returncode == 2 and "nonsense" in result.stderr


def test_a_password_in_the_query_string_is_never_echoed():
    result = run_cli("info", url="postgresql://u@127.0.0.1:1/db?password=s3cret")
    assert result.returncode == 3 and "s3cret" not in result.stderr


@pytest.mark.parametrize("value", ["600", "0", "0s", "-5s"])
def test_timeouts_need_a_positive_value_with_a_unit(db_url, value):
    result = run_cli("refresh", url=db_url, EFIR_LOCK_TIMEOUT=value)
    assert result.returncode == 2 and "EFIR_LOCK_TIMEOUT" in result.stderr


def test_no_wait_skip_is_not_a_failure(db_url, conn):
    with turn_held(db_url, "mv_kpi_dashboard"):
        result = run_cli(
            "refresh", "--no-wait", "mv_kpi_dashboard", "mv_financial_ratios", url=db_url
        )
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stdout and "mv_financial_ratios" in result.stdout


# --------------------------------------------------------------------------- hardening


def history_rows(url: str) -> int:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM efir_budget.mv_refresh_log").fetchone()[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EFIR_LOCK_TIMEOUT", "1us"),  # PostgreSQL would round it to 0: no timeout at all
        ("EFIR_STATEMENT_TIMEOUT", "99999999999999s"),  # past PostgreSQL's int of ms
        ("EFIR_REFRESH_WAIT_TIMEOUT", "0.0001s"),
        ("EFIR_CHECK_STATEMENT_TIMEOUT", "30"),
    ],
)
def test_a_timeout_postgresql_cannot_honour_is_bad_usage_and_runs_nothing(
    db_url, conn, name, value
):
    before = history_rows(db_url)
    result = run_cli("refresh", "mv_kpi_dashboard", url=db_url, **{name: value})
    assert result.returncode == 2 and name in result.stderr, result.stderr
    assert history_rows(db_url) == before


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("history", "--limit", "99999999999999999999"), {}, "outside"),
        (("history", "--since", "0001-01-01"), {}, "before 1970"),
        (("history", "--since", "99999d"), {}, "before 1970"),
        (("kpis", "--limit", "0"), {}, "outside"),
        (("demo-data", "--orgs", "99999999999999999999"), {}, "outside"),
        (("info",), {"EFIR_VIEW_SIZE_LIMIT_MB": "nan"}, "EFIR_VIEW_SIZE_LIMIT_MB"),
        (("info",), {"EFIR_MEDIUM_LEVEL_FRACTION": "inf"}, "EFIR_MEDIUM_LEVEL_FRACTION"),
        (("info",), {"EFIR_ALERT_TIMEOUT": "0"}, "EFIR_ALERT_TIMEOUT"),
        (("info",), {"EFIR_CHANGE_LOG_RETENTION": "1 day; DROP TABLE x"}, "RETENTION"),
        (("prune", "--retention", "forever"), {}, "not a number"),
    ],
)
def test_bad_input_is_bad_usage_with_a_clear_line(db_url, args, env, expected):
    result = run_cli(*args, url=db_url, **env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_bad_libpq_parameter_is_a_setting_error():
    result = run_cli("info", url="postgresql://postgres@127.0.0.1:5432/db?connect_timeout=abc")
    assert result.returncode == 2
    assert "connect_timeout" in result.stderr and "ProgrammingError" not in result.stderr


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://user:p@ssw0rd@nohost.invalid/db", "ssw0rd"),  # an unencoded @
        ("postgresql://:s3cret-pass@nohost.invalid/db", "s3cret-pass"),  # no user name
        ("postgresql://u:s3cret-pass@nohost.invalid/db", "s3cret-pass"),
    ],
)
def test_no_piece_of_a_password_is_ever_printed(url, secret):
    result = run_cli("info", url=url)
    assert result.returncode in (2, 3)
    assert secret not in result.stderr + result.stdout
    assert "nohost.invalid" in result.stderr


def test_a_database_behind_the_code_exits_4_and_records_nothing(make_database):
    url = make_database()
    migrate.downgrade(url, "0004_views")
    for command in (("refresh",), ("info",), ("history",), ("kpis",), ("prune",)):
        result = run_cli(*command, url=url)
        assert result.returncode == 4, (command, result.stderr)
        assert "efir-pipeline db upgrade" in result.stderr
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*) FROM efir_budget.mv_refresh_log").fetchone()[0] == 0


def test_prune_works_without_dagster(db_url, conn):
    add_versions(conn, 2)
    refresh_all(db_url)
    age_changes(conn, "40 days")
    result = run_cli("prune", url=db_url)
    assert result.returncode == 0, result.stderr
    assert "pruned 1 reflected change-log row(s) older than 30d" in result.stdout
    # The second version's row stays: it is the latest change of budget_versions.
    assert conn.execute("SELECT count(*) FROM efir_budget.change_log").fetchone()[0] == 1
