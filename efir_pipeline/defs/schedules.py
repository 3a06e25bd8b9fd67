"""The nightly refresh of every view, and the nightly pruning of the change log.

Low-priority changes (single edits, drafts) wait for ``refresh_all_views_nightly``:
02:00 Asia/Riyadh by default, ``EFIR_NIGHTLY_CRON`` / ``EFIR_NIGHTLY_TZ`` to change it
(read when the code location loads). It refreshes every view whatever the sensors
did, so a view whose event-driven run failed is caught up at least once a day. Its runs
carry ``efir/full=true``: incremental views (catalog strategy ``per_version``) recompute
every version and rewrite their cache, so nothing the cache could have missed (a write
that skipped change capture) survives a night (docs/incremental-refresh.md).

``prune_change_log_nightly`` then deletes change-log rows older than
``EFIR_CHANGE_LOG_RETENTION`` (30 days) that every reading view reflects
(``efir_budget.prune_change_log``); unreflected rows stay for the freshness check.
"""

import dagster as dg

from efir_pipeline.core import settings
from efir_pipeline.core.db import changes
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.defs.assets import FULL_TAG, TRIGGER_TAG
from efir_pipeline.defs.jobs import refresh_all_views
from efir_pipeline.defs.resources import PostgresResource

NIGHTLY_SCHEDULE = "refresh_all_views_nightly"
PRUNE_SCHEDULE = "prune_change_log_nightly"


def checked_schedule(name: str, env_var: str, cron: str, build) -> dg.ScheduleDefinition:
    """Build a schedule, turning Dagster's complaint about a bad cron into one line
    naming the setting to fix."""
    try:
        return build()
    except dg.DagsterInvalidDefinitionError:
        raise ConfigError(
            f"{env_var}={cron!r} is not a valid cron string for {name} "
            "(five fields, e.g. '0 2 * * *')"
        ) from None


def build_nightly_schedule(
    cron: str | None = None, timezone: str | None = None
) -> dg.ScheduleDefinition:
    cron = cron or settings.current().nightly_cron
    timezone = timezone or settings.current().nightly_tz

    def build() -> dg.ScheduleDefinition:
        return dg.ScheduleDefinition(
            name=NIGHTLY_SCHEDULE,
            cron_schedule=cron,
            execution_timezone=timezone,
            job=refresh_all_views,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            tags={TRIGGER_TAG: "schedule", FULL_TAG: "true"},
            description=f"Refresh every managed view at {cron} ({timezone}): the low-priority "
            "changes (single edits) and anything an event-driven run missed; a full recompute "
            "(efir/full=true), incremental views included.",
        )

    return checked_schedule(NIGHTLY_SCHEDULE, "EFIR_NIGHTLY_CRON", cron, build)


@dg.op(
    name="prune_change_log_op",
    description="Delete reflected change-log rows older than EFIR_CHANGE_LOG_RETENTION.",
)
def prune_change_log_op(context: dg.OpExecutionContext, postgres: PostgresResource) -> int:
    retention = settings.current().change_log_retention
    with postgres.connection() as conn:
        deleted = changes.prune(conn, retention)
    context.log.info(f"pruned {deleted} reflected change-log row(s) older than {retention}")
    return deleted


@dg.job(
    name="prune_change_log",
    description="Prune efir_budget.change_log: rows older than the retention (default 30 days) "
    "that every view reading their table reflects.",
)
def prune_change_log_job() -> None:
    prune_change_log_op()


def build_prune_schedule(cron: str | None = None, timezone: str | None = None):
    cron = cron or settings.current().prune_cron
    timezone = timezone or settings.current().nightly_tz
    return checked_schedule(
        PRUNE_SCHEDULE,
        "EFIR_PRUNE_CRON",
        cron,
        lambda: dg.ScheduleDefinition(
            name=PRUNE_SCHEDULE,
            cron_schedule=cron,
            execution_timezone=timezone,
            job=prune_change_log_job,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            tags={TRIGGER_TAG: "schedule"},
            description=f"Prune the change log at {cron} ({timezone}).",
        ),
    )


refresh_all_views_nightly = build_nightly_schedule()
prune_change_log_nightly = build_prune_schedule()

SCHEDULES: list[dg.ScheduleDefinition] = [refresh_all_views_nightly, prune_change_log_nightly]
JOBS: list[dg.JobDefinition] = [prune_change_log_job]
