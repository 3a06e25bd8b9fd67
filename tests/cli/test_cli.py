"""The command line: exit codes and one-line errors people can act on."""

from __future__ import annotations

import json

import psycopg
import pytest

from efir_pipeline.core import catalog
from tests.support.commands import run_cli
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
