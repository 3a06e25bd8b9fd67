"""The sensor that tells Dagster what happened in the database without it.

Every successful refresh is a materialization, whoever made it: ``efir-pipeline
refresh`` and ``prepare``, the app's or a DBA's ``REFRESH`` (recorded by the event
triggers), not only Dagster runs. This sensor reads the history rows committed since
its last tick that no Dagster run wrote (``run_id`` NULL; a run reports its own) and
reports each as an ``AssetMaterialization`` described exactly like a run's
(``refresh_events``). It also reports each source table that changed as an
``AssetObservation`` from the change log: changes and rows since the last tick, the
last change, the changes some view does not reflect yet, and the table's data version.

Each history row is reported once: the cursor is the database snapshot of the last
reading (``activity.Mark``), so a row committed later with a lower id is still new
next time. The first tick (no cursor) reports each view's latest refresh unless Dagster
already holds it or something newer, and observes every table, so a fresh Dagster
instance shows the state of the database at once.
"""

from __future__ import annotations

import json
import logging
import math

import dagster as dg

from efir_pipeline.core import catalog, settings
from efir_pipeline.core.db import activity
from efir_pipeline.core.db.activity import Mark, Refresh
from efir_pipeline.defs import refresh_events
from efir_pipeline.defs.assets import source_tables
from efir_pipeline.defs.keys import view_asset_key
from efir_pipeline.defs.resources import PostgresResource

log = logging.getLogger(__name__)

REPORTING_SENSOR = "report_database_activity"


def load_mark(raw: str | None) -> Mark | None:
    """The cursor's mark; unreadable means none (the first-tick rules then apply)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Mark(str(data["snapshot"]), int(data["origin"]))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable reporting cursor: %.200s", raw)
        return None


def dump_mark(mark: Mark) -> str:
    return json.dumps({"snapshot": mark.snapshot, "origin": mark.origin})


def already_known(instance: dg.DagsterInstance, refresh: Refresh) -> bool:
    """Whether Dagster holds this refresh or a newer materialization of its view."""
    event = instance.get_latest_materialization_event(view_asset_key(refresh.view_name))
    if event is None or event.asset_materialization is None:
        return False
    logged = event.asset_materialization.metadata.get("refresh_log_id")
    if logged is not None and logged.value == refresh.id:
        return True
    return event.timestamp >= refresh.finished_at.timestamp()


def report(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    since = load_mark(context.cursor)
    events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    with postgres.connection() as conn:
        read = activity.read_activity(conn, since, catalog.VIEWS, source_tables())
        known = set(catalog.view_names())
        for refresh in read.refreshes:
            if refresh.view_name not in known:
                continue  # a view dropped from the catalog: no asset to report on
            if since is None and already_known(context.instance, refresh):
                continue
            view = catalog.get_view(refresh.view_name)
            events.append(refresh_events.materialization(conn, view, refresh))
    events += [refresh_events.observation(t) for t in read.tables if since is None or t.changes]
    materialized = sum(isinstance(e, dg.AssetMaterialization) for e in events)
    observed = len(events) - materialized
    if events:
        context.log.info(
            f"reported {materialized} refresh(es) made outside Dagster runs and "
            f"{observed} source table(s) with new changes"
        )
        return dg.SensorResult(asset_events=events, cursor=dump_mark(read.mark))
    return dg.SensorResult(
        skip_reason="no refresh outside Dagster runs and no source change since the last tick",
        cursor=dump_mark(read.mark),
    )


@dg.sensor(
    name=REPORTING_SENSOR,
    minimum_interval_seconds=math.ceil(settings.current().activity_sensor_interval.seconds),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports refreshes made outside Dagster runs (CLI, app, psql) as "
    "materializations of their views, and source-table changes (change log) as observations.",
)
def report_database_activity(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    return report(context, postgres)


SENSORS: list[dg.SensorDefinition] = [report_database_activity]
