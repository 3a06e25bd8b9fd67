"""The refresh history and the "data as of" dashboards read, on a real database."""

from __future__ import annotations

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.history import refresh_history
from tests.support.factories import add_versions_with_lines, age_changes, refresh_all

KPI = catalog.get_view("mv_kpi_dashboard")
CONSOLIDATION = catalog.get_view("mv_budget_consolidation")


@pytest.fixture
def seeded(conn: psycopg.Connection, db_url: str):
    versions = add_versions_with_lines(conn, 3)
    refresh_all(db_url)
    return versions


# --------------------------------------------------------------------------- SQL side


def test_kpi_freshness_gives_dashboards_as_of_and_lag(conn, seeded):
    rows = {
        r[0]: r
        for r in conn.execute(
            "SELECT view_name, data_as_of, lag_seconds, pending_changes FROM efir_budget.kpi_freshness"
        ).fetchall()
    }
    assert set(rows) == set(catalog.view_names())
    as_of = conn.execute(
        """SELECT max(snapshot_at) FROM efir_budget.mv_refresh_log
           WHERE view_name = 'mv_kpi_dashboard' AND outcome = 'success'"""
    ).fetchone()[0]
    assert rows["mv_kpi_dashboard"][1:] == (as_of, 0, 0)

    conn.execute("UPDATE efir_budget.revenue_plans SET amount_sar = 5")
    age_changes(conn, "10 minutes")
    lag, pending = conn.execute(
        "SELECT lag_seconds, pending_changes FROM efir_budget.kpi_freshness "
        "WHERE view_name = 'mv_kpi_dashboard'"
    ).fetchone()
    assert lag == pytest.approx(600, abs=30) and pending == 3  # one row per version written


def test_refresh_history_records_the_lag_each_refresh_closed(conn, seeded, db_url):
    conn.execute(
        "UPDATE efir_budget.revenue_plans SET amount_sar = 6 WHERE budget_version_id = %s",
        (seeded[0],),
    )
    age_changes(conn, "15 minutes", table_name="revenue_plans")
    refresh_all(db_url)
    rows = refresh_history(conn, [KPI], limit=1)
    (row,) = rows
    assert row["view_name"] == "mv_kpi_dashboard" and row["outcome"] == "success"
    assert row["reflected_changes"] == 1
    assert row["lag_closed_seconds"] == pytest.approx(900, abs=30)
    # The consolidation does not read revenue_plans: that refresh closed no lag.
    (other,) = refresh_history(conn, [CONSOLIDATION], limit=1)
    assert other["reflected_changes"] == 0 and other["lag_closed_seconds"] is None


def test_the_health_revision_downgrades_and_upgrades_again(make_database):
    url = make_database()
    objects = ("efir_budget.kpi_freshness", "efir_budget.refresh_history")
    with psycopg.connect(url, autocommit=True) as c:
        assert all(c.execute("SELECT to_regclass(%s)", (o,)).fetchone()[0] for o in objects)
        comment = c.execute(
            "SELECT obj_description('efir_budget.kpi_freshness'::regclass, 'pg_class')"
        ).fetchone()[0]
        assert "data-as-of" in comment
    migrate.downgrade(url, "0004_views")
    with psycopg.connect(url, autocommit=True) as c:
        assert not any(c.execute("SELECT to_regclass(%s)", (o,)).fetchone()[0] for o in objects)
        assert (
            c.execute("SELECT to_regprocedure('efir_budget.view_freshness()')").fetchone()[0]
            is None
        )
        assert c.execute(
            "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'efir_%%'"
        ).fetchone() == (0,)
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision(url)
