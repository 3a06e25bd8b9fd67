"""The refresh engine against a real server: concurrency, failures, history."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import checks
from efir_pipeline.core.db.info import view_info
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshSettings
from efir_pipeline.core.settings import Settings
from tests.support.factories import add_version
from tests.support.waiting import turn_held, wait_for_blocked_refreshes

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
             (id, created_at, updated_at, budget_version_id, account_code, account_name,
              consolidation_category, is_revenue, amount_sar, source_table, source_count,
              is_calculated)
           VALUES (gen_random_uuid(), now(), now(), %s, '70111', 'Tuition T1', 'revenue_tuition',
                   true, 100, 'revenue_plans', 1, true)""",
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
    with turn_held(db_url, KPI.name):
        result = refresh_view(KPI, url=db_url, settings=settings)
    assert result.outcome == "failed" and result.transient
    assert "lock timeout" in result.error


def test_failures_record_how_long_they_waited_and_ran(conn, db_url):
    settings = RefreshSettings.from_settings(Settings()).overridden(
        lock_timeout="10s", statement_timeout="400ms", wait_timeout="300ms"
    )
    with turn_held(db_url, KPI.name):
        waited = refresh_view(KPI, url=db_url, settings=settings)
    assert waited.wait_seconds >= 0.25 and "EFIR_REFRESH_WAIT_TIMEOUT" in waited.error
    with table_locked(db_url, "revenue_plans"):
        ran = refresh_view(KPI, url=db_url, settings=settings)
    assert ran.duration_seconds >= 0.3 and "EFIR_STATEMENT_TIMEOUT" in ran.error


# --------------------------------------------------------------------------- hardening


def test_a_function_planted_in_public_never_runs_inside_a_refresh(make_database):
    """Where some role may create in ``public`` (the default before PostgreSQL 15), it can
    plant ``public.pg_total_relation_size(text)``: an untyped literal argument picks the
    text version, which then runs as the pipeline, inside the refresh transaction."""
    url = make_database()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        c.execute("CREATE TABLE public.hijacked (at timestamptz)")
        for name in ("pg_total_relation_size", "pg_relation_size", "count"):
            c.execute(
                f"""CREATE FUNCTION public.{name}(text) RETURNS bigint LANGUAGE sql
                    AS $$ INSERT INTO public.hijacked VALUES (now()); SELECT 0::bigint $$"""
            )
        add_version(c, name="Budget", status="approved")
    for view in catalog.resolve_views():
        assert refresh_view(view, url=url).ok
    with psycopg.connect(url, autocommit=True) as c:
        for view in catalog.VIEWS:
            checks.view_size(c, view, checks.Thresholds.default())
            view_info(c, view)
        assert c.execute("SELECT count(*) FROM public.hijacked").fetchone()[0] == 0


def test_a_success_dated_in_the_future_does_not_pass_for_a_newer_refresh(conn, db_url):
    """Coalescing must not trust the clock: a success row with a future snapshot_at (a
    server clock stepping back, or a forged row) must not make a real change count as
    refreshed."""
    version = add_version(conn, name="Budget", status="approved")
    assert refresh_view(KPI, url=db_url).ok
    conn.execute(
        """INSERT INTO efir_budget.mv_refresh_log
               (view_name, outcome, requested_at, snapshot_at, finished_at, row_count)
           VALUES ('mv_kpi_dashboard', 'success', now() + interval '1 day',
                   now() + interval '1 day', now() + interval '1 day', 1)"""
    )
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded', updated_at = now() "
        "WHERE id = %s",
        (version,),
    )
    result = refresh_view(KPI, url=db_url)
    assert result.outcome == "success"
    assert conn.execute(
        "SELECT status::text FROM efir_budget.mv_kpi_dashboard WHERE budget_version_id = %s",
        (version,),
    ).fetchone() == ("superseded",)


def test_a_refresh_whose_connection_is_lost_still_leaves_a_failure_row(conn, db_url):
    add_version(conn, name="Budget", status="approved")
    assert refresh_view(KPI, url=db_url).ok
    with table_locked(db_url, "revenue_plans"):
        thread, box = in_thread(refresh_view, KPI, url=db_url, trigger="doomed")
        wait_for_blocked_refreshes(db_url)
        conn.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'
                 AND query LIKE 'REFRESH MATERIALIZED VIEW%%'"""
        )
        thread.join(15)
    result = box["result"]
    assert (result.outcome, result.transient) == ("failed", True)
    assert result.log_id is not None
    assert history(conn, KPI.name)[-1][0::6] == ("failed", "doomed")
    assert conn.execute(
        "SELECT last_outcome FROM efir_budget.kpi_freshness WHERE view_name = %s", (KPI.name,)
    ).fetchone() == ("failed",)
