"""The Dagster asset checks: generated from the catalog, run after each refresh, blocking.

Materialized in process (``dg.materialize`` on an ephemeral instance) against a real
scratch database, with the real view assets and resource.
"""

from __future__ import annotations

import dagster as dg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import checks as health
from efir_pipeline.defs import assets, checks
from efir_pipeline.defs.resources import PostgresResource
from tests.support.factories import (
    add_version_with_lines,
    add_versions_with_lines,
    age_changes,
    refresh_all,
)

KPI_KEY = dg.AssetKey("mv_kpi_dashboard")


def run(definitions: list, postgres: PostgresResource, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        definitions,
        instance=kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral(),
        resources={"postgres": postgres},
        raise_on_error=False,
        **kwargs,
    )


def evaluations(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_checks_are_generated_from_the_catalog():
    keys = {(k.asset_key.to_user_string(), k.name) for k in checks.check_keys()}
    expected = {(v.name, c) for v in catalog.VIEWS for c in health.checks_for(v)}
    assert keys == expected
    assert ("mv_kpi_dashboard", "completeness") in keys
    assert ("mv_budget_consolidation", "completeness") not in keys
    specs = {
        (s.asset_key.to_user_string(), s.name): s
        for definition in checks.VIEW_CHECKS
        for s in definition.check_specs
    }
    assert set(specs) == expected
    blocking = {k for k, s in specs.items() if s.blocking}
    assert blocking == {k for k in expected if k[1] in ("completeness", "reconciliation")}


def test_every_check_runs_and_passes_after_each_refresh(conn, postgres):
    add_versions_with_lines(conn, 3)
    result = run([*assets.VIEW_ASSETS, *checks.VIEW_CHECKS], postgres)
    assert result.success
    found = evaluations(result)
    assert set(found) == {(k.asset_key.to_user_string(), k.name) for k in checks.check_keys()}
    failed = {k: e.description for k, e in found.items() if not e.passed}
    assert not failed
    meta = found[("mv_kpi_dashboard", "view_size")].metadata
    assert meta["row_count"].value == 3


def test_jobs_of_the_views_include_their_checks(conn, postgres):
    """A run of a view materializes it and then runs its checks (and only its checks)."""
    add_versions_with_lines(conn, 2)
    from efir_pipeline.defs.jobs import refresh_all_views

    defs = dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        asset_checks=checks.VIEW_CHECKS,
        jobs=[refresh_all_views],
        resources={"postgres": postgres},
    )
    result = defs.resolve_job_def("refresh_all_views").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=[KPI_KEY], raise_on_error=False
    )
    assert result.success
    assert {k[0] for k in evaluations(result)} == {"mv_kpi_dashboard"}
    assert len(evaluations(result)) == len(health.checks_for(catalog.get_view("mv_kpi_dashboard")))


def test_warn_thresholds_from_run_config_do_not_fail_the_run(conn, postgres):
    add_versions_with_lines(conn, 2)
    config = {"refresh_duration_limit": "0s", "view_size_limit_mb": 0.001}
    result = run(
        [assets.VIEW_ASSET_BY_NAME["mv_kpi_dashboard"], *checks.VIEW_CHECKS],
        postgres,
        run_config={"ops": {"mv_kpi_dashboard_health": {"config": config}}},
        selection=dg.AssetSelection.assets(KPI_KEY),
    )
    assert result.success  # WARN checks inform, they do not stop anything
    found = evaluations(result)
    for name in ("refresh_duration", "view_size"):
        evaluation = found[("mv_kpi_dashboard", name)]
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    trend = found[("mv_kpi_dashboard", "refresh_duration")].metadata["trend_seconds"].value
    assert len(trend) == 1
    assert found[("mv_kpi_dashboard", "view_size")].metadata["size_bytes"].value > 0


def stand_in_view_asset() -> dg.AssetsDefinition:
    """The view asset's key without its refresh: the view stays as the last refresh left it."""

    @dg.asset(key=KPI_KEY)
    def _stale() -> None:
        return None

    return _stale


@dg.asset(deps=[KPI_KEY])
def downstream_report() -> None:
    """A test-only consumer of mv_kpi_dashboard."""
    return None


def test_a_failed_blocking_check_stops_the_downstream_asset(conn, db_url, postgres):
    add_versions_with_lines(conn, 2)
    refresh_all(db_url)
    late = add_version_with_lines(conn, "Added after the refresh", year=2040)

    result = run([stand_in_view_asset(), downstream_report, *checks.VIEW_CHECKS], postgres,
                 selection=dg.AssetSelection.assets(KPI_KEY, downstream_report.key))  # fmt: skip
    assert not result.success
    found = evaluations(result)
    completeness = found[("mv_kpi_dashboard", "completeness")]
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    assert completeness.blocking
    assert str(late) in completeness.metadata["missing_version_ids"].value
    reconciliation = found[("mv_kpi_dashboard", "reconciliation")]
    assert not reconciliation.passed
    first = reconciliation.metadata["first_difference"].value
    assert first["budget_version_id"] == str(late) and first["missing_in_view"]
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert KPI_KEY in materialized
    assert downstream_report.key not in materialized


def test_downstream_runs_when_the_view_is_right(conn, postgres):
    add_versions_with_lines(conn, 2)
    result = run(
        [assets.VIEW_ASSET_BY_NAME["mv_kpi_dashboard"], downstream_report, *checks.VIEW_CHECKS],
        postgres,
        selection=dg.AssetSelection.assets(KPI_KEY, downstream_report.key),
    )
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {KPI_KEY, downstream_report.key}


def test_the_freshness_job_runs_only_freshness_and_sees_staleness(conn, db_url, postgres):
    versions = add_versions_with_lines(conn, 2)
    refresh_all(db_url)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (versions[0],)
    )
    age_changes(conn, "7 minutes")
    defs = dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        asset_checks=checks.VIEW_CHECKS,
        jobs=[checks.freshness_checks_job],
        schedules=[checks.freshness_checks_schedule],
        resources={"postgres": postgres},
    )
    job = defs.resolve_job_def(checks.FRESHNESS_JOB)
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success  # freshness never blocks: it warns and alerts
    found = evaluations(result)
    assert set(found) == {(v.name, "freshness") for v in catalog.VIEWS}
    for view_name in ("mv_kpi_dashboard", "mv_budget_consolidation"):  # both read budget_versions
        evaluation = found[(view_name, "freshness")]
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        meta = evaluation.metadata
        assert meta["lag_seconds"].value == pytest.approx(420, abs=30)
        assert meta["oldest_pending_change"].value["priority"] == "high"
        assert meta["oldest_pending_change"].value["table_name"] == "budget_versions"
    schedule = defs.resolve_schedule_def("freshness_checks_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"


def test_definitions_with_checks_and_alerts_load():
    from efir_pipeline.defs import alerts

    defs = dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        asset_checks=checks.VIEW_CHECKS,
        jobs=[checks.freshness_checks_job],
        schedules=[checks.freshness_checks_schedule],
        sensors=[
            alerts.run_failure_alert_sensor,
            alerts.build_check_failure_alert_sensor(checks.check_keys()),
        ],
        resources={"postgres": PostgresResource()},
    )
    dg.Definitions.validate_loadable(defs)


DEPENDENTS = [v for v in catalog.VIEWS if "mv_kpi_dashboard" in v.depends_on]


@pytest.mark.skipif(not DEPENDENTS, reason="no managed view reads mv_kpi_dashboard")
def test_a_failed_blocking_check_stops_a_dependent_view_refresh(conn, db_url, postgres):
    """With a managed view reading mv_kpi_dashboard: a wrong mv_kpi_dashboard is not
    propagated; the dependent view keeps its previous contents and gets no refresh."""
    add_versions_with_lines(conn, 2)
    refresh_all(db_url)
    add_version_with_lines(conn, "Added after the refresh", year=2041)
    dependent = DEPENDENTS[0]
    before = conn.execute(
        "SELECT count(*) FROM efir_budget.mv_refresh_log WHERE view_name = %s", (dependent.name,)
    ).fetchone()[0]

    result = run(
        [stand_in_view_asset(), assets.VIEW_ASSET_BY_NAME[dependent.name], *checks.VIEW_CHECKS],
        postgres,
        selection=dg.AssetSelection.assets(KPI_KEY, dg.AssetKey(dependent.name)),
    )
    assert not result.success
    assert not evaluations(result)[("mv_kpi_dashboard", "completeness")].passed
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(dependent.name) not in materialized
    after = conn.execute(
        "SELECT count(*) FROM efir_budget.mv_refresh_log WHERE view_name = %s", (dependent.name,)
    ).fetchone()[0]
    assert after == before


def test_a_bad_freshness_cron_is_one_clear_error(monkeypatch):
    from efir_pipeline.core.errors import ConfigError

    monkeypatch.setenv("EFIR_FRESHNESS_CHECK_CRON", "every 5 minutes")
    with pytest.raises(ConfigError, match="EFIR_FRESHNESS_CHECK_CRON"):
        checks.build_freshness_checks_schedule()
    monkeypatch.setenv("EFIR_FRESHNESS_CHECK_CRON", "*/10 * * * *")
    assert checks.build_freshness_checks_schedule().cron_schedule == "*/10 * * * *"
