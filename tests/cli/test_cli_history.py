"""``efir-pipeline history``: the last refreshes with duration, rows, size, trigger and lag."""

from __future__ import annotations

import json

import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db.refresh import refresh_view
from tests.support.commands import run_cli
from tests.support.factories import add_versions_with_lines, age_changes, refresh_all


def history(url: str, *args: str) -> list[dict]:
    result = run_cli("history", *args, "--json", url=url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


KPI = catalog.get_view("mv_kpi_dashboard")
CONSOLIDATION = catalog.get_view("mv_budget_consolidation")


def test_history_lists_the_newest_refreshes_first_with_their_figures(conn, db_url):
    add_versions_with_lines(conn, 2)
    for view in (KPI, CONSOLIDATION):
        refresh_view(view, url=db_url, trigger="schedule")
    refresh_view(KPI, url=db_url, trigger="sensor:high")

    rows = history(db_url)
    assert [(r["view"], r["trigger"]) for r in rows] == [
        ("mv_kpi_dashboard", "sensor:high"),
        ("mv_budget_consolidation", "schedule"),
        ("mv_kpi_dashboard", "schedule"),
    ]
    latest = rows[0]
    assert latest["outcome"] == "success" and latest["row_count"] == 2
    assert latest["size_bytes"] > 0 and latest["duration_seconds"] >= 0
    for key in ("snapshot_at", "finished_at", "wait_seconds", "lag_closed_seconds", "error"):
        assert key in latest


def test_history_filters_by_view_since_and_limit(conn, db_url):
    add_versions_with_lines(conn, 1)
    for _ in range(3):
        refresh_all(db_url)
    rows = history(db_url, "mv_budget_consolidation", "--limit", "2")
    assert [r["view"] for r in rows] == ["mv_budget_consolidation"] * 2
    assert rows[0]["id"] > rows[1]["id"]
    assert history(db_url, "--since", "2999-01-01") == []
    assert len(history(db_url, "--since", "1h")) == 3 * len(catalog.VIEWS)


def test_history_shows_the_lag_a_refresh_closed(conn, db_url):
    versions = add_versions_with_lines(conn, 2)
    refresh_all(db_url)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (versions[0],)
    )
    age_changes(conn, "20 minutes")
    refresh_all(db_url, trigger="sensor:high")
    latest = {r["view"]: r for r in history(db_url, "--limit", str(len(catalog.VIEWS)))}
    for view in ("mv_kpi_dashboard", "mv_budget_consolidation"):
        assert latest[view]["lag_closed_seconds"] == pytest.approx(1200, abs=60)
        assert latest[view]["reflected_changes"] == 1

    text = run_cli("history", "mv_kpi_dashboard", url=db_url)
    assert text.returncode == 0
    header, _, first = text.stdout.splitlines()[:3]
    assert "lag_closed" in header and "trigger" in header
    assert "sensor:high" in first and "min" in first  # 20.0min


def test_history_rejects_unknown_views_and_bad_dates_before_connecting():
    dead = "postgresql://nobody@127.0.0.1:1/none"
    result = run_cli("history", "mv_nope", url=dead)
    assert result.returncode == 2 and "mv_nope" in result.stderr
    result = run_cli("history", "--since", "yesterday-ish", url=dead)
    assert result.returncode == 2 and "--since" in result.stderr
