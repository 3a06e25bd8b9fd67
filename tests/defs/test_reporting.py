"""The reporting sensor: every refresh made outside a Dagster run becomes one
materialization, and source tables show their changes, with data versions Dagster
reads back as staleness that agrees with the change log.

Ticks run through ``dg.build_sensor_context`` on an ephemeral instance; the events a
tick returns are stored the way the daemon stores them (``report_runless_asset_event``).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import psycopg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from efir_pipeline.core import catalog
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.definitions import defs
from efir_pipeline.defs import assets, reporting
from efir_pipeline.defs.resources import PostgresResource
from tests.support.factories import add_org, add_version, refresh_all

KPI = catalog.get_view("mv_kpi_dashboard")
RATIOS = catalog.get_view("mv_financial_ratios")


@dataclass
class Reported:
    materialized: list[dg.AssetMaterialization]
    observed: list[dg.AssetObservation]
    cursor: str | None
    skip: str | None

    def log_ids(self, view: str | None = None) -> list[int]:
        return [
            m.metadata["refresh_log_id"].value
            for m in self.materialized
            if view is None or m.asset_key.path[-1] == view
        ]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def report(db_url, instance):
    def tick(cursor: str | None = None, store: bool = True) -> Reported:
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = reporting.report(context, PostgresResource(database_url=db_url))
        events = list(result.asset_events)
        if store:
            for event in events:
                instance.report_runless_asset_event(event)
        skip = result.skip_reason.skip_message if result.skip_reason else None
        return Reported(
            [e for e in events if isinstance(e, dg.AssetMaterialization)],
            [e for e in events if isinstance(e, dg.AssetObservation)],
            result.cursor,
            skip,
        )

    return tick


def test_the_first_tick_shows_every_view_refreshed_outside_dagster(conn, db_url, report):
    refresh_all(db_url, trigger="prepare")
    first = report()
    assert sorted(m.asset_key.path[-1] for m in first.materialized) == sorted(catalog.view_names())
    meta = {m.asset_key.path[-1]: m.metadata for m in first.materialized}[KPI.name]
    assert meta["trigger"].value == "prepare"
    assert meta["refreshed_by"].value
    assert meta["dagster/row_count"].value == 0
    assert {"duration_seconds", "size_bytes", "mode", "versions_recomputed", "data_as_of"} <= set(
        meta
    )
    # Every source table is observed once, so the lineage shows each from the start.
    assert sorted(o.asset_key.path[-1] for o in first.observed) == sorted(assets.source_tables())
    assert report(first.cursor).skip is not None  # nothing new: nothing reported twice


def test_each_refresh_outside_a_run_is_reported_exactly_once(conn, db_url, report):
    refresh_all(db_url)
    cursor = report().cursor
    cli = refresh_view(KPI, url=db_url, trigger="manual")
    conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.mv_budget_consolidation")
    dagster_run = refresh_view(KPI, url=db_url, trigger="dagster", run_id="some-run")
    second = report(cursor)
    outside = conn.execute(
        """SELECT id FROM efir_budget.mv_refresh_log
           WHERE view_name = 'mv_budget_consolidation' AND trigger = 'outside'"""
    ).fetchone()[0]
    assert sorted(second.log_ids()) == sorted([cli.log_id, outside])
    assert dagster_run.log_id not in second.log_ids()  # its run reports it
    assert report(second.cursor).log_ids() == []


def test_a_row_committed_after_a_higher_id_is_still_reported(conn, db_url, report):
    refresh_all(db_url)
    cursor = report().cursor
    with psycopg.connect(db_url) as slow:  # draws the lower id, commits last
        slow.execute(
            """INSERT INTO efir_budget.mv_refresh_log
                   (view_name, outcome, trigger, requested_at, snapshot_at, finished_at, row_count)
               VALUES ('mv_workforce_utilization', 'success', 'manual', now(), now(), now(), 0)"""
        )
        fast = refresh_view(KPI, url=db_url)
        middle = report(cursor)
        assert middle.log_ids() == [fast.log_id]
    late = report(middle.cursor)
    assert late.log_ids("mv_workforce_utilization") == [fast.log_id - 1]
    assert report(late.cursor).log_ids() == []


def test_a_lost_cursor_does_not_report_a_refresh_again(conn, db_url, report):
    refresh_all(db_url)
    assert len(report().materialized) == len(catalog.VIEWS)
    assert report(None).materialized == []  # Dagster already holds each one


def test_source_observations_count_changes_and_carry_the_latest_change_as_version(
    conn, db_url, report
):
    org = add_org(conn)
    refresh_all(db_url)
    cursor = report().cursor
    version = add_version(conn, org)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'submitted' WHERE id = %s", (version,)
    )
    seen = report(cursor)
    (obs,) = seen.observed
    assert obs.asset_key.path[-1] == "budget_versions"
    assert obs.metadata["changes"].value == 2
    assert obs.metadata["pending_changes"].value == 2
    latest = conn.execute("SELECT max(id) FROM efir_budget.change_log").fetchone()[0]
    assert obs.tags["dagster/data_version"] == str(latest)


def stale(instance: dg.DagsterInstance, view: catalog.ManagedView) -> StaleStatus:
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    return resolver.get_status(dg.AssetKey(view.name))


def test_dagster_staleness_follows_the_change_log(conn, db_url, report, instance):
    org = add_org(conn)
    version = add_version(conn, org)
    refresh_all(db_url)
    cursor = report().cursor
    assert stale(instance, KPI) == StaleStatus.FRESH
    assert stale(instance, RATIOS) == StaleStatus.FRESH

    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'approved' WHERE id = %s", (version,)
    )
    cursor = report(cursor).cursor
    assert stale(instance, KPI) == StaleStatus.STALE

    refresh_view(KPI, url=db_url)
    cursor = report(cursor).cursor
    assert stale(instance, KPI) == StaleStatus.FRESH
    assert stale(instance, RATIOS) == StaleStatus.STALE  # reads the new kpi rows
    refresh_view(RATIOS, url=db_url)
    report(cursor)
    assert stale(instance, RATIOS) == StaleStatus.FRESH
