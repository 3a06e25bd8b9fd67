"""The nightly schedule: every view at 02:00 Asia/Riyadh (configurable), and pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from efir_pipeline.core.errors import ConfigError
from efir_pipeline.defs import assets, jobs, schedules
from efir_pipeline.defs.resources import PostgresResource
from tests.support.factories import add_dhg, add_versions, log_rows, refresh_all

RIYADH = ZoneInfo("Asia/Riyadh")


def next_ticks(schedule: dg.ScheduleDefinition, after: datetime, n: int = 2) -> list[datetime]:
    from dagster._utils.schedules import cron_string_iterator

    ticks = cron_string_iterator(
        after.timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    return [next(ticks) for _ in range(n)]


def test_the_nightly_schedule_runs_every_view_at_two_in_riyadh():
    schedule = schedules.refresh_all_views_nightly
    assert schedule.name == "refresh_all_views_nightly"
    assert schedule.job_name == jobs.REFRESH_ALL_VIEWS
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Asia/Riyadh")

    ticks = next_ticks(schedule, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert [t.astimezone(RIYADH).replace(tzinfo=None) for t in ticks] == [
        datetime(2026, 3, 2, 2, 0),
        datetime(2026, 3, 3, 2, 0),
    ]
    assert ticks[0].astimezone(UTC) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # UTC+3

    context = dg.build_schedule_context(scheduled_execution_time=ticks[0])
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.asset_selection is None  # the whole job: every managed view
    assert request.tags["efir/trigger"] == "schedule"


def test_the_job_it_runs_selects_every_view():
    defs = dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        jobs=jobs.JOBS,
        schedules=[schedules.refresh_all_views_nightly],
        resources={"postgres": PostgresResource()},
    )
    job = defs.resolve_job_def(jobs.REFRESH_ALL_VIEWS)
    assert {k.path[-1] for k in job.asset_layer.executable_asset_keys} == {
        a.key.path[-1] for a in assets.VIEW_ASSETS
    }


def test_cron_and_time_zone_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EFIR_NIGHTLY_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("EFIR_NIGHTLY_TZ", "Europe/Paris")
    schedule = schedules.build_nightly_schedule()
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 3 * * 1-5", "Europe/Paris")
    (tick,) = next_ticks(schedule, datetime(2026, 7, 3, 12, 0, tzinfo=UTC), n=1)  # a Friday
    assert tick.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None) == datetime(
        2026, 7, 6, 3, 30
    )
    assert tick.astimezone(UTC).hour == 1  # Paris is UTC+2 in July


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EFIR_NIGHTLY_CRON", "every night"),
        ("EFIR_NIGHTLY_CRON", "0 2 * *"),
        ("EFIR_NIGHTLY_TZ", "Mars/Olympus"),
    ],
)
def test_a_bad_setting_is_one_clear_error(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        schedules.build_nightly_schedule()


def test_the_prune_job_removes_old_reflected_changes(conn, db_url):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version)
    refresh_all(db_url)
    conn.execute(
        "UPDATE efir_budget.change_log SET changed_at = changed_at - %s", (timedelta(days=31),)
    )
    add_dhg(conn, version, "FRAN")  # recent: kept
    result = schedules.prune_change_log_job.execute_in_process(
        resources={"postgres": PostgresResource(database_url=db_url)}
    )
    assert result.success
    assert result.output_for_node("prune_change_log_op") == 1  # MATH (the version's is the latest)
    left = [r["table_name"] for r in log_rows(conn)]
    assert left == ["budget_versions", "dhg_teacher_requirements"]


def test_the_prune_schedule_runs_after_the_nightly_refresh():
    schedule = schedules.prune_change_log_nightly
    assert schedule.job_name == "prune_change_log"
    assert schedule.execution_timezone == "Asia/Riyadh"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    after = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert (
        next_ticks(schedule, after, 1)[0]
        > next_ticks(schedules.refresh_all_views_nightly, after, 1)[0]
    )
