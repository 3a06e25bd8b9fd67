"""Dagster assets generated from the view catalog: budget tables in, KPI views out.

Nothing here is written per view. Each source table any catalog view reads becomes
an external ``dg.AssetSpec`` (the budget app writes it; Dagster only shows it), and
each catalog view becomes an asset that depends on its source tables and on the
managed views in its ``depends_on``. Adding a view to ``catalog.VIEWS`` adds its
asset, lineage and pool here with no further code.

Materializing a view asset calls the same refresh engine as ``efir-pipeline
refresh`` (the view's lock, CONCURRENTLY, timeouts, history row); the Dagster run id
and the trigger go into ``efir_budget.mv_refresh_log``.
"""

import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import NoReturn

import dagster as dg
import psycopg

from efir_pipeline.core import settings
from efir_pipeline.core.catalog import SCHEMA, VIEWS, ManagedView
from efir_pipeline.core.db import activity
from efir_pipeline.core.db.refresh_terms import RefreshResult
from efir_pipeline.core.errors import DatabaseUnavailable, EfirError
from efir_pipeline.defs import annotations, refresh_events
from efir_pipeline.defs.keys import source_asset_key, view_asset_key
from efir_pipeline.defs.refresh_events import DATA_VERSION_TAG, describe_refresh
from efir_pipeline.defs.resources import PostgresResource

SOURCES_GROUP = "budget_sources"
VIEWS_GROUP = "kpi_views"
TRIGGER_TAG = "efir/trigger"
"""Run tag naming who asked for a refresh (e.g. ``sensor:high``); recorded in the history."""
DEFAULT_TRIGGER = "dagster"
FULL_TAG = "efir/full"
"""Run tag: ``true`` makes every view of the run recompute all its versions (incremental
views included, which then rewrite their cache); the nightly schedule sets it."""
_log = logging.getLogger(__name__)


def pool_name(view: ManagedView) -> str:
    """One pool per view: Dagster never runs two refreshes of one view at once.

    The engine's per-view lock enforces the same across Dagster, the CLI and any other
    client; the pool keeps Dagster from even starting a second step that would only
    wait on that lock (``dagster.yaml`` sets every pool's limit to 1).
    """
    return f"efir_{view.name}"


def source_tables() -> list[str]:
    """Every table some catalog view reads, in first-seen catalog order."""
    return list(dict.fromkeys(t for v in VIEWS for t in v.source_tables))


def build_source_specs() -> list[dg.AssetSpec]:
    specs = []
    for table in source_tables():
        readers = [v.name for v in VIEWS if table in v.source_tables]
        specs.append(
            dg.AssetSpec(
                key=source_asset_key(table),
                group_name=SOURCES_GROUP,
                kinds={"postgres"},
                description=f"Budget app table {SCHEMA}.{table} (written by the budget app, "
                f"not by Dagster). Read by: {', '.join(readers)}.",
                metadata={"dagster/table_name": f"{SCHEMA}.{table}"},
            )
        )
    return specs


def build_source_assets(specs: list[dg.AssetSpec]) -> dg.AssetsDefinition:
    """The source tables as observable assets: observing one reads its change log
    (``refresh_events.observation``), the same facts the reporting sensor sends each
    tick. Observable, so Dagster compares the views' recorded versions with theirs."""

    def observe_budget_sources(context: dg.AssetExecutionContext, postgres: PostgresResource):
        wanted = [t for t in source_tables() if source_asset_key(t) in context.selected_asset_keys]
        with postgres.connection() as conn:
            tables = activity.table_activity(conn, VIEWS, wanted)
        for table in tables:
            event = refresh_events.observation(table)
            yield dg.ObserveResult(
                asset_key=event.asset_key,
                metadata=event.metadata,
                data_version=dg.DataVersion(event.tags[DATA_VERSION_TAG]),
            )

    with warnings.catch_warnings():  # beta in 1.13; the way to make specs observable
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(
            specs=specs, name="observe_budget_sources", can_subset=True
        )(observe_budget_sources)


def describe(view: ManagedView) -> str:
    """The asset description: the catalog summary and the view's COMMENT text.

    Taken from the catalog, not the database, so loading definitions never waits on
    (or fails with) an unreachable server; a test keeps ``comment`` equal to the
    database's COMMENT.
    """
    parts = [view.description]
    if view.comment:
        parts.append(view.comment)
    parts.append(
        f"Materialized view `{view.qualified_name}`, unique key ({', '.join(view.unique_key)}); "
        f"defining query in `{view.qualified_live_view}`. Materializing runs REFRESH "
        "MATERIALIZED VIEW CONCURRENTLY (plain only when never populated) through the "
        "efir-pipeline refresh engine and records it in efir_budget.mv_refresh_log."
    )
    if view.incremental:
        parts.append(
            f"Incremental (strategy per_version): the view selects from `{SCHEMA}."
            f"{view.incremental_view}`, so a refresh recomputes only the versions with changes "
            f"not yet synced (`{SCHEMA}.{view.dirty_view}`); run tag `{FULL_TAG}=true` (the "
            "nightly schedule) recomputes them all. See docs/incremental-refresh.md."
        )
    return "\n\n".join(parts)


def trigger_for(tags: Mapping[str, str]) -> str:
    """What the history records as ``trigger`` for a run with these tags."""
    if tags.get(TRIGGER_TAG):
        return tags[TRIGGER_TAG]
    if tags.get("dagster/schedule_name"):
        return "schedule"
    if tags.get("dagster/sensor_name"):
        return "sensor"
    return DEFAULT_TRIGGER


def full_requested(tags: Mapping[str, str]) -> bool:
    """Whether a run with these tags asks for full refreshes (``efir/full=true``)."""
    return str(tags.get(FULL_TAG, "")).strip().lower() in ("true", "1", "yes")


def build_view_asset(view: ManagedView) -> dg.AssetsDefinition:
    deps = [source_asset_key(t) for t in view.source_tables]
    deps += [view_asset_key(name) for name in view.depends_on]

    metadata: dict[str, object] = {
        "dagster/table_name": view.qualified_name,
        "unique_key": ", ".join(view.unique_key),
        "live_view": view.qualified_live_view,
        "dagster/code_references": annotations.code_references(view),
    }
    lineage = annotations.column_lineage(view)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage

    @dg.asset(
        key=view_asset_key(view),
        deps=deps,
        group_name=VIEWS_GROUP,
        kinds={"postgres"},
        pool=pool_name(view),
        description=describe(view),
        metadata=metadata,
        owners=list(settings.current().asset_owners),
        code_version=annotations.code_version(view),
        freshness_policy=annotations.freshness_policy(),
    )
    def _view_asset(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        return refresh_as_materialization(context, postgres, view)

    return _view_asset


def refresh_as_materialization(
    context: dg.AssetExecutionContext, postgres: PostgresResource, view: ManagedView
) -> dg.MaterializeResult:
    """Refresh ``view`` and turn the engine's result into Dagster's terms.

    success/coalesced -> MaterializeResult; transient failure -> RetryRequested until
    ``transient_retries`` is spent, then Failure; anything else -> Failure at once.
    """
    trigger = trigger_for(context.run.tags)
    full = full_requested(context.run.tags)
    try:
        result = postgres.refresh(view, trigger=trigger, run_id=context.run_id, full=full)
    except DatabaseUnavailable as exc:  # cannot even connect: worth another try
        retry_or_fail(context, postgres, view, str(exc), transient=True, metadata={})
    except EfirError as exc:  # configuration, migrations not applied: retrying cannot help
        raise dg.Failure(
            description=f"{view.name}: {exc}", metadata={"trigger": trigger}, allow_retries=False
        ) from None
    if not result.ok:
        retry_or_fail(
            context,
            postgres,
            view,
            result.error or result.outcome,
            transient=result.transient,
            metadata=failure_metadata(result, trigger),
        )
    context.log.info(
        f"{view.name}: {result.outcome} in {result.duration_seconds:.3f}s "
        f"(history id {result.log_id}, trigger {trigger})"
    )
    return materialize_result(postgres, view, result, trigger, context.log)


def retry_or_fail(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    view: ManagedView,
    error: str,
    *,
    transient: bool,
    metadata: Mapping[str, object],
) -> NoReturn:
    """Raise RetryRequested for a transient error with retries left, else Failure."""
    attempt = context.retry_number + 1
    if transient and context.retry_number < postgres.transient_retries:
        context.log.warning(
            f"{view.name}: transient failure on attempt {attempt}, retrying in "
            f"{postgres.retry_wait_seconds:g}s: {error}"
        )
        raise dg.RetryRequested(
            max_retries=postgres.transient_retries, seconds_to_wait=postgres.retry_wait_seconds
        )
    kind = "transient error, retries exhausted" if transient else "error"
    raise dg.Failure(
        description=f"refresh of {view.qualified_name} failed after {attempt} attempt(s) "
        f"({kind}): {error}",
        metadata={**metadata, "attempts": attempt, "transient": transient},
        allow_retries=False,
    )


def failure_metadata(result: RefreshResult, trigger: str) -> dict[str, object]:
    metadata: dict[str, object] = {
        "error": result.error or "",
        "outcome": result.outcome,
        "trigger": trigger,
    }
    if result.log_id is not None:
        metadata["refresh_log_id"] = result.log_id
    return metadata


def materialize_result(
    postgres: PostgresResource,
    view: ManagedView,
    result: RefreshResult,
    trigger: str,
    log: logging.Logger | dg.DagsterLogManager | None = None,
) -> dg.MaterializeResult:
    """The materialization of a successful refresh, described from its history row like
    one reported from outside Dagster (``refresh_events``); a coalesced request is
    described by the refresh that covered it.

    Best effort: the refresh is committed and recorded, so a database that vanished a
    moment later costs the details in the UI (the engine's own figures remain), not a
    failed materialization.
    """
    try:
        with postgres.connection() as conn:
            if result.outcome == "success" and result.log_id is not None:
                record = activity.refresh_record(conn, result.log_id)
            else:
                record = activity.last_success(conn, view)
            if record is not None:
                metadata, tags = describe_refresh(conn, view, record)
                metadata.update(
                    outcome=result.outcome,
                    trigger=trigger,
                    wait_seconds=dg.MetadataValue.float(float(result.wait_seconds)),
                )
                if result.log_id is not None and result.log_id != record.id:
                    metadata["refresh_log_id"] = dg.MetadataValue.int(result.log_id)
                    metadata["covered_by_refresh_log_id"] = dg.MetadataValue.int(record.id)
                version = tags.get(DATA_VERSION_TAG)
                return dg.MaterializeResult(
                    metadata=metadata,
                    tags=tags,
                    data_version=dg.DataVersion(version) if version else None,
                )
    except (psycopg.Error, EfirError) as exc:
        (log or _log).warning(f"{view.name}: refreshed, but its details could not be read: {exc}")
    return dg.MaterializeResult(metadata=engine_metadata(view, result, trigger))


def engine_metadata(view: ManagedView, result: RefreshResult, trigger: str) -> dict[str, object]:
    """What the engine itself reported, when the history cannot be read."""
    metadata: dict[str, object] = {
        "dagster/table_name": dg.MetadataValue.text(view.qualified_name),
        "outcome": result.outcome,
        "trigger": trigger,
        "duration_seconds": dg.MetadataValue.float(float(result.duration_seconds)),
        "wait_seconds": dg.MetadataValue.float(float(result.wait_seconds)),
    }
    if result.row_count is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(result.row_count)
    if result.log_id is not None:
        metadata["refresh_log_id"] = dg.MetadataValue.int(result.log_id)
    if result.snapshot_at is not None:
        metadata["data_as_of"] = dg.MetadataValue.timestamp(result.snapshot_at)
    return metadata


def build_view_assets(views: Iterable[ManagedView] = VIEWS) -> list[dg.AssetsDefinition]:
    return [build_view_asset(v) for v in views]


SOURCE_SPECS: list[dg.AssetSpec] = build_source_specs()
SOURCE_ASSETS: dg.AssetsDefinition = build_source_assets(SOURCE_SPECS)
VIEW_ASSETS: list[dg.AssetsDefinition] = build_view_assets()
VIEW_ASSET_BY_NAME: dict[str, dg.AssetsDefinition] = {
    v.name: a for v, a in zip(VIEWS, VIEW_ASSETS, strict=True)
}
