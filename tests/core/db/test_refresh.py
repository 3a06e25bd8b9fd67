"""The refresh engine against a real server: concurrency, failures, history."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db.refresh import RefreshSettings, refresh_view
from efir_pipeline.core.settings import Settings
from tests.support.factories import add_version
from tests.support.waiting import wait_for_blocked_refreshes

KPI = catalog.get_view("mv_kpi_dashboard")
CONSOLIDATION = catalog.get_view("mv_budget_consolidation")


@contextmanager
def table_locked(url: str, table: str) -> Iterator[None]:
    """Hold ACCESS EXCLUSIVE on a source table, so a refresh reading it stalls."""
    with psycopg.connect(url) as holder:
        holder.execute(f"LOCK TABLE efir_budget.{table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            holder.rollback()


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn(*args, **kwargs)))
    thread.start()
    return thread, box


def history(conn: psycopg.Connection, view: str) -> list[tuple]:
    return conn.execute(
        """SELECT outcome, ran_concurrently, row_count, snapshot_at, finished_at, error, trigger
           FROM efir_budget.mv_refresh_log WHERE view_name = %s ORDER BY id""",
        (view,),
    ).fetchall()


def test_refresh_is_concurrent_and_recorded(conn, db_url):
    add_version(conn, name="Budget", status="approved")
    for view in catalog.VIEWS:
        result = refresh_view(view, url=db_url, trigger="test")
        assert result.outcome == "success", result.error
        assert result.concurrently is True
        count = conn.execute(f"SELECT count(*) FROM {view.qualified_name}").fetchone()[0]
        assert result.row_count == count
        assert result.size_bytes > 0 and result.duration_seconds > 0
        [(outcome, concurrently, rows, snapshot_at, finished_at, error, trigger)] = history(
            conn, view.name
        )
        assert (outcome, concurrently, rows, error, trigger) == (
            "success",
            True,
            count,
            None,
            "test",
        )
        assert snapshot_at <= finished_at
    assert conn.execute("SELECT count(*) FROM efir_budget.mv_kpi_dashboard").fetchone()[0] == 1


def test_a_never_populated_view_is_refreshed_plainly_once(conn, db_url):
    conn.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_kpi_dashboard WITH NO DATA")
    first = refresh_view(KPI, url=db_url)
    second = refresh_view(KPI, url=db_url)
    assert (first.outcome, first.concurrently) == ("success", False)
    assert (second.outcome, second.concurrently) == ("success", True)


def test_readers_are_not_blocked_while_a_refresh_runs(conn, db_url):
    add_version(conn, name="Budget", status="approved")
    refresh_view(KPI, url=db_url)
    with table_locked(db_url, "revenue_plans"):
        thread, box = in_thread(refresh_view, KPI, url=db_url)
        wait_for_blocked_refreshes(db_url)
        with psycopg.connect(db_url, autocommit=True) as reader:
            reader.execute("SET statement_timeout = '2s'")
            started = time.monotonic()
            assert (
                reader.execute("SELECT count(*) FROM efir_budget.mv_kpi_dashboard").fetchone()[0]
                == 1
            )
            assert time.monotonic() - started < 1
    thread.join(15)
    assert box["result"].outcome == "success"


def test_a_failed_refresh_keeps_the_old_rows_and_is_recorded(conn, db_url):
    add_version(conn, name="Before", status="approved")
    refresh_view(KPI, url=db_url)
    add_version(conn, name="After", year=2027, status="approved")
    settings = RefreshSettings.from_settings(Settings()).overridden(
        lock_timeout="10s", statement_timeout="300ms", wait_timeout="10s"
    )
    with table_locked(db_url, "revenue_plans"):
        result = refresh_view(KPI, url=db_url, settings=settings)
    assert result.outcome == "failed" and not result.transient
    assert "statement timeout" in result.error
    names = [
        r[0]
        for r in conn.execute("SELECT version_name FROM efir_budget.mv_kpi_dashboard").fetchall()
    ]
    assert names == ["Before"]
    outcomes = [row[0] for row in history(conn, KPI.name)]
    assert outcomes == ["success", "failed"]


def test_a_lock_timeout_is_a_transient_failure(conn, db_url):
    settings = RefreshSettings.from_settings(Settings()).overridden(
        lock_timeout="200ms", statement_timeout="10s", wait_timeout="10s"
    )
    with table_locked(db_url, "revenue_plans"):
        result = refresh_view(KPI, url=db_url, settings=settings)
    assert result.outcome == "failed" and result.transient
    assert "lock timeout" in result.error


def test_a_second_caller_that_will_not_wait_is_told_and_runs_nothing(conn, db_url):
    with table_locked(db_url, "revenue_plans"):
        thread, box = in_thread(refresh_view, KPI, url=db_url)
        wait_for_blocked_refreshes(db_url)
        second = refresh_view(KPI, url=db_url, wait=False)
    thread.join(15)
    assert second.outcome == "skipped" and "another refresh" in second.error
    assert box["result"].outcome == "success"
    assert [r[0] for r in history(conn, KPI.name)] == ["skipped", "success"]


def test_requests_during_a_refresh_give_exactly_one_more_refresh(conn, db_url):
    """Two callers arriving while a refresh runs: one refresh after it, the other coalesced."""
    with table_locked(db_url, "revenue_plans"):
        first, first_box = in_thread(refresh_view, KPI, url=db_url)
        wait_for_blocked_refreshes(db_url, 1)
        second, second_box = in_thread(refresh_view, KPI, url=db_url)
        third, third_box = in_thread(refresh_view, KPI, url=db_url)
        wait_for_blocked_refreshes(db_url, 3)
    for thread in (first, second, third):
        thread.join(15)
    outcomes = sorted(box["result"].outcome for box in (first_box, second_box, third_box))
    assert outcomes == ["coalesced", "success", "success"]
    rows = [r for r in history(conn, KPI.name) if r[0] == "success"]
    # never two at once: each success starts after the previous one finished
    assert rows[0][4] <= rows[1][3]


@pytest.mark.parametrize("view", catalog.VIEWS, ids=lambda v: v.name)
def test_concurrent_refresh_succeeds_with_data(conn, db_url, view):
    version = add_version(conn, name="Budget", status="approved")
    conn.execute(
        """INSERT INTO efir_budget.budget_consolidations
             (budget_version_id, account_code, account_name, consolidation_category,
              is_revenue, amount_sar, source_table, source_count)
           VALUES (%s, '70111', 'Tuition T1', 'revenue_tuition', true, 100, 'revenue_plans', 1)""",
        (version,),
    )
    assert refresh_view(view, url=db_url).outcome == "success"
    conn.execute("UPDATE efir_budget.budget_consolidations SET amount_sar = 200")
    assert refresh_view(view, url=db_url).outcome == "success"
    live = conn.execute(
        f"SELECT count(*) FROM (SELECT * FROM {view.qualified_live_view} "
        f"EXCEPT SELECT * FROM {view.qualified_name}) d"
    ).fetchone()[0]
    assert live == 0


def test_waiting_for_another_refresh_is_bounded(conn, db_url):
    settings = RefreshSettings.from_settings(Settings()).overridden(
        lock_timeout="10s", statement_timeout="10s", wait_timeout="200ms"
    )
    with psycopg.connect(db_url) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            (0x45464952, KPI.qualified_name),
        )
        result = refresh_view(KPI, url=db_url, settings=settings)
        holder.rollback()
    assert result.outcome == "failed" and result.transient
    assert "lock timeout" in result.error


def test_failures_record_how_long_they_waited_and_ran(conn, db_url):
    settings = RefreshSettings.from_settings(Settings()).overridden(
        lock_timeout="10s", statement_timeout="400ms", wait_timeout="300ms"
    )
    with psycopg.connect(db_url) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x45464952, KPI.qualified_name)
        )
        waited = refresh_view(KPI, url=db_url, settings=settings)
        holder.rollback()
    assert waited.wait_seconds >= 0.25 and "EFIR_REFRESH_WAIT_TIMEOUT" in waited.error
    with table_locked(db_url, "revenue_plans"):
        ran = refresh_view(KPI, url=db_url, settings=settings)
    assert ran.duration_seconds >= 0.3 and "EFIR_STATEMENT_TIMEOUT" in ran.error
