"""The health checks (efir_pipeline.core.db.checks), called directly on a real database.

Each check passes right after a refresh and fails the way the operator's guide says
when forced: an old unreflected change (freshness), a low threshold (duration, size), a
version added without a refresh (completeness), a source row deleted without a
refresh (reconciliation).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import checks
from efir_pipeline.core.db.checks import Thresholds
from efir_pipeline.core.settings import Settings
from tests.support.factories import (
    add_version_with_lines,
    add_versions_with_lines,
    age_changes,
    capture_bypassed,
    refresh_all,
)

KPI = catalog.get_view("mv_kpi_dashboard")
CONSOLIDATION = catalog.get_view("mv_budget_consolidation")
THRESHOLDS = Thresholds.default()


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def seeded(conn: psycopg.Connection, db_url: str) -> list[uuid.UUID]:
    versions = add_versions_with_lines(conn, 3)
    refresh_all(db_url)
    return versions


# --------------------------------------------------------------------------- all checks


@pytest.mark.parametrize("view", catalog.VIEWS, ids=catalog.view_names())
def test_every_check_passes_right_after_a_refresh(conn, seeded, view):
    for check in checks.checks_for(view):
        result = checks.run_check(conn, view, check, THRESHOLDS)
        assert result.passed, (check, result.description)
        assert result.view == view.name and result.check == check


def test_completeness_applies_only_to_one_row_per_version_views():
    assert checks.COMPLETENESS in checks.checks_for(KPI)
    assert checks.COMPLETENESS not in checks.checks_for(CONSOLIDATION)
    assert KPI.one_row_per_version and not CONSOLIDATION.one_row_per_version


def test_a_never_populated_view_fails_every_data_check(conn):
    conn.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_kpi_dashboard WITH NO DATA")
    try:
        for check in (
            checks.FRESHNESS,
            checks.COMPLETENESS,
            checks.RECONCILIATION,
            checks.VIEW_SIZE,
        ):
            result = checks.run_check(conn, KPI, check, THRESHOLDS)
            assert not result.passed and "never been populated" in result.description
    finally:  # views reading this one cannot be refreshed while it is empty
        conn.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_kpi_dashboard")


# --------------------------------------------------------------------------- freshness


@pytest.mark.parametrize(
    ("age", "passed", "severity"),
    [("25 hours", True, None), ("27 hours", False, "WARN"), ("53 hours", False, "ERROR")],
)
def test_freshness_of_a_low_priority_edit_against_26_hours(conn, seeded, age, passed, severity):
    conn.execute(
        "UPDATE efir_budget.revenue_plans SET amount_sar = amount_sar + 1 "
        "WHERE budget_version_id = %s AND account_code = '70110'",
        (seeded[0],),
    )
    age_changes(conn, age, table_name="revenue_plans")
    result = checks.freshness(conn, KPI, THRESHOLDS)
    assert result.passed is passed
    if severity:
        assert result.severity == severity
    meta = result.metadata
    assert meta["pending_changes"] == 1
    assert meta["by_priority"]["low"]["pending_changes"] == 1
    hours = int(age.split()[0])
    assert meta["lag_seconds"] == pytest.approx(hours * 3600, abs=60)
    oldest = meta["oldest_pending_change"]
    assert oldest["priority"] == "low" and oldest["table_name"] == "revenue_plans"
    assert oldest["budget_version_id"] == str(seeded[0]) and oldest["operation"] == "UPDATE"
    # The consolidation does not read revenue_plans: still fresh.
    assert checks.freshness(conn, CONSOLIDATION, THRESHOLDS).passed


def test_freshness_judges_each_change_by_its_own_priority(conn, seeded):
    """A low edit two hours old is fine; a status change six minutes old is not."""
    conn.execute(
        "UPDATE efir_budget.revenue_plans SET amount_sar = 1 WHERE budget_version_id = %s",
        (seeded[0],),
    )
    age_changes(conn, "2 hours", table_name="revenue_plans")
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (seeded[1],)
    )
    age_changes(conn, "6 minutes", table_name="budget_versions")
    result = checks.freshness(conn, KPI, THRESHOLDS)
    assert not result.passed and result.severity == "WARN"
    assert result.metadata["oldest_pending_change"]["priority"] == "high"
    assert result.metadata["oldest_pending_change"]["budget_version_id"] == str(seeded[1])
    assert "high-priority" in result.description
    # The lag is the oldest change whatever its priority.
    assert result.metadata["lag_seconds"] == pytest.approx(7200, abs=60)

    age_changes(conn, "11 minutes", table_name="budget_versions")
    assert checks.freshness(conn, KPI, THRESHOLDS).severity == "ERROR"


def test_freshness_passes_again_once_refreshed(conn, seeded, db_url):
    conn.execute("UPDATE efir_budget.revenue_plans SET amount_sar = 2")
    age_changes(conn, "3 days")
    assert not checks.freshness(conn, KPI, THRESHOLDS).passed
    refresh_all(db_url)
    result = checks.freshness(conn, KPI, THRESHOLDS)
    assert result.passed and result.metadata["pending_changes"] == 0


def test_freshness_limits_come_from_the_environment(conn, seeded, monkeypatch):
    monkeypatch.setenv("EFIR_FRESHNESS_LIMIT_LOW", "1min")
    conn.execute("UPDATE efir_budget.revenue_plans SET amount_sar = 3")
    age_changes(conn, "90 seconds")
    settings = Thresholds.from_settings(Settings.from_env())
    assert settings.freshness_limits == {"high": 300, "medium": 3600, "low": 60}
    result = checks.freshness(conn, KPI, settings)
    assert not result.passed and result.severity == "WARN"


# --------------------------------------------------------------------------- duration, size


def test_refresh_duration_warns_over_the_limit_with_the_trend(conn, seeded, db_url):
    for _ in range(2):
        refresh_all(db_url)
    assert checks.refresh_duration(conn, KPI, THRESHOLDS).passed
    result = checks.refresh_duration(conn, KPI, THRESHOLDS.with_overrides(duration_limit_seconds=0))
    assert not result.passed and result.severity == "WARN"
    meta = result.metadata
    durations = [
        d
        for (d,) in conn.execute(
            """SELECT duration_seconds FROM efir_budget.mv_refresh_log
               WHERE view_name = 'mv_kpi_dashboard' AND outcome = 'success' ORDER BY id"""
        ).fetchall()
    ]
    assert meta["trend_seconds"] == [round(d, 3) for d in durations]  # oldest first
    assert meta["duration_seconds"] == round(durations[-1], 3)
    assert meta["limit_seconds"] == 0 and meta["trend_over_limit"] == 3


def test_refresh_duration_trend_keeps_the_last_n(conn, seeded, db_url):
    for _ in range(3):
        refresh_all(db_url)
    result = checks.refresh_duration(conn, KPI, THRESHOLDS.with_overrides(trend_length=2))
    assert len(result.metadata["trend_seconds"]) == 2


def test_view_size_warns_over_the_limit_with_size_and_rows(conn, seeded):
    assert checks.view_size(conn, KPI, THRESHOLDS).passed
    result = checks.view_size(conn, KPI, THRESHOLDS.with_overrides(size_limit_bytes=1))
    assert not result.passed and result.severity == "WARN"
    size = conn.execute("SELECT pg_total_relation_size('efir_budget.mv_kpi_dashboard')").fetchone()[
        0
    ]
    assert result.metadata["size_bytes"] == size
    assert result.metadata["row_count"] == 3


# --------------------------------------------------------------------------- completeness


def test_completeness_catches_a_version_added_without_a_refresh(conn, seeded):
    added = add_version_with_lines(conn, "Late", year=2031)
    result = checks.completeness(conn, KPI)
    assert not result.passed and result.severity == "ERROR"
    assert result.metadata["missing_versions"] == 1
    assert result.metadata["missing_version_ids"] == [str(added)]
    assert str(added) in result.description


def test_completeness_catches_a_row_of_a_deleted_version(conn, seeded):
    conn.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = now() WHERE id = %s", (seeded[2],)
    )
    result = checks.completeness(conn, KPI)
    assert not result.passed
    assert result.metadata["extra_rows"] == 1
    assert result.metadata["extra_version_ids"] == [str(seeded[2])]


# --------------------------------------------------------------------------- reconciliation


def test_reconciliation_names_the_version_and_column_of_a_deleted_source_row(conn, seeded):
    target = seeded[1]
    conn.execute(
        "DELETE FROM efir_budget.revenue_plans WHERE budget_version_id = %s AND account_code = '70210'",
        (target,),
    )
    result = checks.reconciliation(conn, KPI, THRESHOLDS)
    assert not result.passed and result.severity == "ERROR"
    first = result.metadata["first_difference"]
    assert first["budget_version_id"] == str(target)
    assert first["column"] == "fees_revenue_sar"
    assert (first["view_value"], first["live_value"]) == ("25000.50", "0.00")
    assert "total_revenue_sar" in first["differing_columns"]
    assert result.metadata["differing_version_ids"] == [str(target)]
    assert str(target) in result.description and "fees_revenue_sar" in result.description
    # Change capture logged that delete: the metadata says the difference is explained.
    assert result.metadata["versions_with_changes_since_refresh"] == [str(target)]


def test_reconciliation_flags_a_difference_no_logged_change_explains(conn, seeded):
    with capture_bypassed(conn):
        conn.execute(
            "UPDATE efir_budget.revenue_plans SET amount_sar = 7 WHERE budget_version_id = %s",
            (seeded[0],),
        )
    result = checks.reconciliation(conn, KPI, THRESHOLDS)
    assert not result.passed
    assert result.metadata["versions_with_changes_since_refresh"] == []
    assert "no logged change explains it" in result.description


def test_reconciliation_of_a_two_column_key_reports_missing_rows(conn, seeded):
    target = seeded[2]
    conn.execute(
        "DELETE FROM efir_budget.budget_consolidations WHERE budget_version_id = %s AND account_code = '64110'",
        (target,),
    )
    result = checks.reconciliation(conn, CONSOLIDATION, THRESHOLDS)
    assert not result.passed
    first = result.metadata["first_difference"]
    assert first["budget_version_id"] == str(target) and first["account_code"] == "64110"
    assert first["missing_in_live"] and first["column"] == "(row)"


def test_reconciliation_catches_a_version_deleted_after_the_refresh(conn, seeded):
    conn.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = now() WHERE id = %s", (seeded[0],)
    )
    result = checks.reconciliation(conn, KPI, THRESHOLDS)
    assert not result.passed
    assert result.metadata["first_difference"]["budget_version_id"] == str(seeded[0])
    assert result.metadata["first_difference"]["missing_in_live"]


def test_reconciliation_samples_deterministically(conn, db_url):
    versions = add_versions_with_lines(conn, 25)
    refresh_all(db_url)
    one = checks.sample_versions(conn, KPI, 20, "seed-a")
    assert one == checks.sample_versions(conn, KPI, 20, "seed-a")
    assert one[1] == 25 and len(one[0]) == 20 and set(one[0]) <= set(versions)
    assert one[0] != checks.sample_versions(conn, KPI, 20, "seed-b")[0]
    assert set(checks.sample_versions(conn, KPI, 40, "x")[0]) == set(versions)  # all when fewer

    result = checks.reconciliation(conn, KPI, THRESHOLDS.with_overrides(sample_seed="seed-a"))
    assert result.passed
    assert result.metadata["sample_size"] == 20 and result.metadata["candidate_versions"] == 25
    assert result.metadata["view_rows"] == 20 and result.metadata["seed"] == "seed-a"


def test_reconciliation_seed_defaults_to_the_last_refresh(conn, seeded):
    result = checks.reconciliation(conn, KPI, THRESHOLDS)
    last = conn.execute(
        """SELECT max(id) FROM efir_budget.mv_refresh_log
           WHERE view_name = 'mv_kpi_dashboard' AND outcome = 'success'"""
    ).fetchone()[0]
    assert result.metadata["seed"] == str(last)
