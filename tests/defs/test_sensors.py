"""The priority sensors against a real database: which views, when, and only once."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from efir_pipeline.core import catalog, settings
from efir_pipeline.core.db import changes, migrate
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.errors import MigrationsNotApplied
from efir_pipeline.core.rules import Change, Priority, RefreshRules
from efir_pipeline.core.settings import Settings
from efir_pipeline.defs import assets, jobs, keys, reporting, schedules, sensors
from efir_pipeline.defs.resources import PostgresResource
from tests.support.factories import (
    add_consolidation,
    add_dhg,
    add_enrollment,
    add_operating_costs,
    add_org,
    add_version,
    add_versions,
    age_changes,
    max_change_id,
    refresh_all,
    view_equals_live_query,
)
from tests.support.waiting import wait_for_blocked_refreshes

KPI = catalog.get_view("mv_kpi_dashboard")

HIGH = sensors.high_priority_sensor
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MEDIUM = sensors.medium_priority_sensor


class Tick:
    """One evaluation of a sensor: its run requests, cursor and skip reason."""

    def __init__(self, sensor: dg.SensorDefinition, url: str, cursor: str | None, instance):
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"postgres": PostgresResource(database_url=url)},
        )
        result = sensor(context)
        self.requests: list[dg.RunRequest] = list(getattr(result, "run_requests", None) or [])
        self.cursor: str | None = getattr(result, "cursor", None) or cursor
        skip = result if isinstance(result, dg.SkipReason) else getattr(result, "skip_reason", None)
        self.skip: str = skip.skip_message if skip is not None else ""

    @property
    def groups(self) -> list[list[str]]:
        return [[k.path[-1] for k in r.asset_selection] for r in self.requests]

    @property
    def views(self) -> set[str]:
        """The views requested; each in one request only, with its upstream views."""
        names = [name for group in self.groups for name in group]
        assert len(names) == len(set(names)), self.groups
        for group in self.groups:
            for name in group:
                view = catalog.get_view(name)
                assert not set(view.depends_on) & set(names) - set(group), self.groups
        return set(names)


def reading(*tables: str) -> set[str]:
    """The views a write to these tables makes stale, per the catalog, and the views
    they read (refreshed first, in the same run)."""
    names = {v.name for t in tables for v in catalog.views_reading(t)}
    for view in reversed(catalog.refresh_order(catalog.VIEWS)):
        if view.name in names:
            names |= set(view.depends_on)
    return names


def with_dependents(name: str) -> set[str]:
    """A view and every view reading it (directly or not)."""
    out = {name}
    for view in catalog.refresh_order(catalog.VIEWS):
        if out & set(view.depends_on):
            out.add(view.name)
    return out


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def tick(db_url, instance):
    def run(sensor=HIGH, cursor=None):
        return Tick(sensor, db_url, cursor, instance)

    return run


# --------------------------------------------------------------------------- high priority


def test_a_status_change_refreshes_both_views_on_the_next_tick(conn, db_url, tick):
    org = add_org(conn)
    version = add_version(conn, org)
    add_dhg(conn, version)
    refresh_all(db_url)
    baseline = tick()
    assert baseline.requests == []

    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'approved' WHERE id = %s", (version,)
    )
    result = tick(cursor=baseline.cursor)
    assert result.views == reading("budget_versions")
    assert {"mv_kpi_dashboard", "mv_budget_consolidation"} <= result.views
    for request in result.requests:
        assert request.tags["efir/trigger"] == "sensor:high"
        assert "status change working -> approved" in request.tags["efir/reason"]
        assert request.run_key.startswith("high:")
    assert tick(cursor=result.cursor).requests == []


def test_a_consolidation_rewrite_refreshes_only_the_consolidation_view(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    add_consolidation(conn, version, accounts=3)
    refresh_all(db_url)
    baseline = tick()
    with conn.transaction():
        conn.execute(
            "DELETE FROM efir_budget.budget_consolidations WHERE budget_version_id = %s",
            (version,),
        )
        add_consolidation(conn, version, accounts=4)
    result = tick(cursor=baseline.cursor)
    assert result.views == reading("budget_consolidations")
    assert "mv_budget_consolidation" in result.views and KPI.name not in result.views
    assert "consolidation rewritten" in result.requests[0].tags["efir/reason"]


def test_one_insert_of_150_enrollment_rows_is_high_priority(conn, db_url, tick):
    versions = add_versions(conn, 4)  # 45 rows per version at most: only the statement is bulk
    refresh_all(db_url)
    baseline = tick()
    add_enrollment(conn, versions, limit=150)
    assert conn.execute(
        "SELECT max(rows_affected), sum(rows_affected) FROM efir_budget.change_log "
        "WHERE table_name = 'enrollment_plans'"
    ).fetchone() == (45, 150)
    result = tick(cursor=baseline.cursor)
    assert result.views == reading("enrollment_plans") and KPI.name in result.views
    assert "bulk write: 150 rows of enrollment_plans" in result.requests[0].tags["efir/reason"]


def test_the_bulk_threshold_is_configuration(conn, db_url, instance, monkeypatch):
    versions = add_versions(conn, 1)
    refresh_all(db_url)
    add_operating_costs(conn, versions, per_version=150)
    monkeypatch.setenv("EFIR_BULK_ROWS", "500")
    settings.current.cache_clear()  # what a restart of the code location does
    assert Tick(HIGH, db_url, None, instance).requests == []
    monkeypatch.setenv("EFIR_BULK_ROWS", "149")
    settings.current.cache_clear()
    assert Tick(HIGH, db_url, None, instance).views == reading("operating_cost_plans")


def test_a_single_edit_waits_for_the_nightly_run(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    add_operating_costs(conn, [version], per_version=3)
    refresh_all(db_url)
    high, medium = tick(HIGH), tick(MEDIUM)
    conn.execute(
        "UPDATE efir_budget.operating_cost_plans SET amount_sar = 42 "
        "WHERE budget_version_id = %s AND account_code = '6061'",
        (version,),
    )
    age_changes(conn, timedelta(hours=3), relative=True)
    assert tick(HIGH, high.cursor).requests == []
    assert tick(MEDIUM, medium.cursor).requests == []
    assert not view_equals_live_query(conn, KPI)

    nightly = schedules.build_nightly_schedule()
    request = nightly.evaluate_tick(dg.build_schedule_context()).run_requests[0]
    assert request.tags["efir/trigger"] == "schedule"
    refresh_all(db_url, trigger="schedule")  # what the nightly run does
    assert view_equals_live_query(conn, KPI)
    assert (
        conn.execute("SELECT efir_budget.oldest_unreflected_change(%s)", (KPI.name,)).fetchone()[0]
        is None
    )


# --------------------------------------------------------------------------- medium priority


def test_fifty_medium_events_over_the_hour_make_one_refresh(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version)
    refresh_all(db_url)
    cursor = tick(MEDIUM).cursor

    def edit(n: int) -> None:
        for i in range(n):
            conn.execute(
                "UPDATE efir_budget.dhg_teacher_requirements SET hsa_hours = %s "
                "WHERE budget_version_id = %s",
                (i % 7, version),
            )

    first_id = max_change_id(conn)
    edit(25)
    age_changes(
        conn, timedelta(minutes=40), relative=True, since_id=first_id
    )  # the first ones, 40 min ago
    early = tick(MEDIUM, cursor)
    assert early.requests == [] and "collected until" in early.skip
    assert tick(HIGH).requests == []  # DHG edits are not high

    edit(25)  # the rest of the hour
    age_changes(
        conn, timedelta(minutes=15), relative=True, since_id=first_id
    )  # the first are 55 min old now
    due = tick(MEDIUM, early.cursor)
    assert due.views == reading("dhg_teacher_requirements")  # one refresh per view, not 50
    (request,) = [r for r in due.requests if KPI.name in r.tags["efir/views"].split(",")]
    assert f"{KPI.name}=50" in request.tags["efir/changes"].split(",")
    assert request.tags["efir/trigger"] == "sensor:medium"

    assert tick(MEDIUM, due.cursor).requests == []  # the next tick: nothing new
    retried = tick(MEDIUM, early.cursor)  # a retried tick: same key, Dagster launches it once
    assert [r.run_key for r in retried.requests] == [r.run_key for r in due.requests]


def test_enrollment_touching_more_than_a_tenth_of_the_levels_is_medium(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    refresh_all(db_url)
    cursor = tick(MEDIUM).cursor
    add_enrollment(conn, [version], levels=["PS"])  # 1 of 15 levels: low
    age_changes(conn, timedelta(hours=2), relative=True)
    assert tick(MEDIUM, cursor).requests == []
    add_enrollment(conn, [version], levels=["CP", "CE1"])  # 2 of 15 > 10%: medium
    age_changes(conn, timedelta(hours=2), relative=True)
    result = tick(MEDIUM, cursor)
    assert result.views == reading("enrollment_plans")
    assert "2/15 levels" in result.requests[0].tags["efir/reason"]


def test_medium_changes_already_reflected_by_another_refresh_are_dropped(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    refresh_all(db_url)
    cursor = tick(MEDIUM).cursor
    add_dhg(conn, version)
    age_changes(conn, timedelta(hours=2), relative=True)
    refresh_all(db_url)  # e.g. a high-priority refresh came first
    assert tick(MEDIUM, cursor).requests == []


# --------------------------------------------------------------------------- during a refresh


def test_a_burst_during_a_refresh_is_reflected_by_the_next_refresh(conn, db_url, tick):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version)
    refresh_all(db_url)
    baseline = tick()
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'submitted' WHERE id = %s", (version,)
    )
    first = tick(cursor=baseline.cursor)
    assert KPI.name in first.views

    box: dict = {}
    with psycopg.connect(db_url) as blocker:  # the requested refresh runs, and is slow
        blocker.execute("LOCK TABLE efir_budget.revenue_plans IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=lambda: box.setdefault("r", refresh_view(KPI, url=db_url)))
        thread.start()
        wait_for_blocked_refreshes(db_url)
        add_operating_costs(conn, [version], per_version=150)  # the burst, during the refresh
        during = tick(cursor=first.cursor)  # the next tick, while the refresh still runs
        blocker.rollback()
    thread.join(15)
    assert box["r"].ok
    assert during.views == reading("operating_cost_plans")  # exactly one more refresh
    assert KPI.name in during.views
    assert not {r.run_key for r in during.requests} & {r.run_key for r in first.requests}

    assert refresh_view(KPI, url=db_url).ok  # the run the sensor requested
    assert view_equals_live_query(conn, KPI)
    assert tick(cursor=during.cursor).requests == []


@pytest.mark.parametrize(
    "status",
    [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED],  # STARTED: no step yet
)
def test_no_request_stacks_behind_a_run_that_has_not_refreshed_the_view_yet(
    conn, db_url, tick, instance, status
):
    org = add_org(conn)
    version = add_version(conn, org)
    refresh_all(db_url)
    baseline = tick()
    job = _definitions().resolve_job_def(jobs.REFRESH_ALL_VIEWS)
    waiting = instance.create_run_for_job(
        job_def=job, status=status, asset_selection=frozenset({keys.view_asset_key(KPI)})
    )
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'submitted' WHERE id = %s", (version,)
    )
    result = tick(cursor=baseline.cursor)
    assert result.views == reading("budget_versions") - with_dependents(KPI.name)
    assert "run not yet started" in tick(cursor=result.cursor).skip
    instance.delete_run(waiting.run_id)  # e.g. cancelled: the change is still outstanding
    assert tick(cursor=result.cursor).views == reading("budget_versions") & with_dependents(
        KPI.name
    )


# --------------------------------------------------------------------------- cursor and wiring


def test_an_unreadable_cursor_starts_over_without_losing_changes(conn, db_url, tick):
    org = add_org(conn)
    version = add_version(conn, org)
    refresh_all(db_url)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'approved' WHERE id = %s", (version,)
    )
    for garbage in ("not json", json.dumps({"views": {"mv_kpi_dashboard": {"snapshot": "x"}}})):
        assert tick(cursor=garbage).views == reading("budget_versions")


def test_a_database_behind_the_code_is_refused_with_the_command_to_run(make_database, instance):
    url = make_database()
    migrate.downgrade(url, "0002_refresh_history")
    with pytest.raises(MigrationsNotApplied, match="efir-pipeline db upgrade"):
        Tick(HIGH, url, None, instance)


def test_rules_come_from_the_settings():
    environment = Settings.from_env({"EFIR_BULK_ROWS": "250", "EFIR_MEDIUM_BATCH_WINDOW": "10min"})
    rules = RefreshRules.from_settings(environment)
    assert (rules.bulk_rows, rules.medium_batch_seconds) == (250, 600)


def test_the_sensors_run_by_default_and_target_the_refresh_job():
    # Dagster's sensor daemon loops every MIN_INTERVAL_LOOP_TIME seconds or more; a minimum
    # interval below that evaluates the sensor on every loop, one equal to it skips a loop
    # whenever the loop comes round early (a 10 s wait, measured in docs/performance.md).
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert HIGH.minimum_interval_seconds == 4 < MIN_INTERVAL_LOOP_TIME
    assert reporting.report_database_activity.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME
    assert MEDIUM.minimum_interval_seconds == 60
    for sensor in sensors.SENSORS:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.job_name == jobs.REFRESH_CHANGED_VIEWS


def _definitions(url: str | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        jobs=[*jobs.JOBS, *schedules.JOBS],
        sensors=sensors.SENSORS,
        schedules=schedules.SCHEDULES,
        resources={"postgres": PostgresResource(database_url=url)},
    )


def test_the_sensors_and_schedules_load_with_the_code_location():
    dg.Definitions.validate_loadable(_definitions())
    assert {v.name for v in catalog.VIEWS} == {
        k.path[-1]
        for k in _definitions()
        .resolve_job_def(jobs.REFRESH_ALL_VIEWS)
        .asset_layer.executable_asset_keys
    }


def test_a_requested_run_refreshes_the_requested_views_and_records_the_trigger(
    conn, db_url, tick, instance
):
    (version,) = add_versions(conn, 1)
    refresh_all(db_url)
    baseline = tick()
    add_consolidation(conn, version)
    (request,) = [
        r
        for r in tick(cursor=baseline.cursor).requests
        if "mv_budget_consolidation" in r.tags["efir/views"].split(",")
    ]
    job = _definitions(db_url).resolve_job_def(jobs.REFRESH_ALL_VIEWS)
    result = job.execute_in_process(
        instance=instance,
        asset_selection=request.asset_selection,
        tags=request.tags,
    )
    assert result.success
    rows = conn.execute(
        """SELECT view_name, trigger, reflected_snapshot IS NOT NULL
           FROM efir_budget.mv_refresh_log WHERE trigger LIKE 'sensor%%'"""
    ).fetchall()
    requested = request.tags["efir/views"].split(",")
    assert sorted(rows) == sorted((v, "sensor:high", True) for v in requested)
    assert changes.unreflected_changes(conn, catalog.get_view("mv_budget_consolidation")) == []


def test_a_view_on_a_view_is_refreshed_after_its_upstream_in_the_same_run(monkeypatch):
    """Its refresh reflects the upstream's tables only as far as the upstream's last refresh."""
    base = catalog.get_view("mv_kpi_dashboard")
    u = dataclasses.replace(base, name="mv_u", source_tables=("revenue_plans",))
    v = dataclasses.replace(
        base, name="mv_v", source_tables=("revenue_plans", "academic_levels"), depends_on=("mv_u",)
    )
    w = dataclasses.replace(base, name="mv_w", source_tables=("capex_plans",))
    monkeypatch.setattr(catalog, "VIEWS", (u, v, w))
    monkeypatch.setattr(catalog, "_BY_NAME", {x.name: x for x in (u, v, w)})
    truncate = Change(1, "academic_levels", None, "TRUNCATE", None, None, None, None, 9, NOW, None)
    read = changes.ChangeRead(
        "5:9:", NOW, 15, {"mv_v": changes.Outstanding("mv_v", 1, 1, [truncate], None)}
    )

    decisions, cursor, _ = sensors.decide(read, {}, Priority.HIGH, RefreshRules())
    assert [d.views for d in decisions] == [("mv_u", "mv_v")]
    assert {name: entry["snapshot"] for name, entry in cursor.items()} == {
        "mv_u": "5:9:",
        "mv_v": "5:9:",
    }

    decisions, cursor, notes = sensors.decide(
        read, {}, Priority.HIGH, RefreshRules(), busy={"mv_u"}
    )
    assert decisions == [] and cursor == {}
    assert "mv_v: a run not yet started on it" in notes[0]
