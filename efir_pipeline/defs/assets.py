"""Dagster assets generated from the view catalog: budget tables in, KPI views out.

Nothing here is written per view. Each source table any catalog view reads becomes
an external ``dg.AssetSpec`` (the budget app writes it; Dagster only shows it), and
each catalog view becomes an asset that depends on its source tables and on the
managed views in its ``depends_on``. Adding a view to ``catalog.VIEWS`` adds its
asset, lineage and pool here with no further code.

Materializing a view asset calls the same refresh engine as ``efir-pipeline
refresh`` (advisory lock, CONCURRENTLY, timeouts, history row); the Dagster run id
and the trigger go into ``efir_budget.mv_refresh_log``.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import NoReturn

import dagster as dg
import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA, VIEWS, ManagedView
from efir_pipeline.core.db.refresh import RefreshResult
from efir_pipeline.core.errors import DatabaseUnavailable, EfirError
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


def view_asset_key(view: ManagedView | str) -> dg.AssetKey:
    """``mv_kpi_dashboard``: the view's own name, so ``--select mv_kpi_dashboard`` works."""
    return dg.AssetKey(view if isinstance(view, str) else view.name)


def source_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table)


def pool_name(view: ManagedView) -> str:
    """One pool per view: Dagster never runs two refreshes of one view at once.

    The engine's advisory lock enforces the same across Dagster, the CLI and any other
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

    @dg.asset(
        key=view_asset_key(view),
        deps=deps,
        group_name=VIEWS_GROUP,
        kinds={"postgres"},
        pool=pool_name(view),
        description=describe(view),
        metadata={
            "dagster/table_name": view.qualified_name,
            "unique_key": ", ".join(view.unique_key),
            "live_view": view.qualified_live_view,
        },
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
    return dg.MaterializeResult(
        metadata=materialization_metadata(postgres, view, result, trigger, context.log)
    )


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


def materialization_metadata(
    postgres: PostgresResource,
    view: ManagedView,
    result: RefreshResult,
    trigger: str,
    log: logging.Logger | dg.DagsterLogManager | None = None,
) -> dict[str, object]:
    """Metadata of a successful refresh, plus the view's columns for the UI.

    A ``coalesced`` result (a newer refresh already covered this request) carries no
    row count of its own, so the current one is read. Those extra reads are best
    effort: the refresh is committed and recorded, so a database that vanished a
    moment later costs the columns in the UI, not a failed materialization.
    """
    row_count, size_bytes, columns = result.row_count, result.size_bytes, None
    try:
        with postgres.connection() as conn:
            if row_count is None or size_bytes is None:
                row_count, size_bytes = conn.execute(
                    sql.SQL(
                        "SELECT (SELECT count(*) FROM {}), pg_total_relation_size({}::regclass)"
                    ).format(sql.Identifier(SCHEMA, view.name), sql.Literal(view.qualified_name))
                ).fetchone()
            columns = column_schema(conn, view)
    except (psycopg.Error, EfirError) as exc:
        (log or _log).warning(f"{view.name}: refreshed, but its details could not be read: {exc}")
    metadata: dict[str, object] = {
        # Dagster's table conventions: the UI shows these as row count, table name, columns.
        "dagster/table_name": dg.MetadataValue.text(view.qualified_name),
        "outcome": result.outcome,
        "trigger": trigger,
        "duration_seconds": dg.MetadataValue.float(float(result.duration_seconds)),
        "wait_seconds": dg.MetadataValue.float(float(result.wait_seconds)),
        "concurrently": bool(result.concurrently),
    }
    if result.mode is not None:
        metadata["mode"] = result.mode
    if result.versions_recomputed is not None:
        metadata["versions_recomputed"] = dg.MetadataValue.int(result.versions_recomputed)
    if row_count is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(row_count)
    if columns is not None:
        metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(columns)
    if size_bytes is not None:
        metadata["size_bytes"] = dg.MetadataValue.int(size_bytes)
        metadata["size_mb"] = dg.MetadataValue.float(round(size_bytes / 1_048_576, 3))
    if result.log_id is not None:
        metadata["refresh_log_id"] = dg.MetadataValue.int(result.log_id)
    if result.snapshot_at is not None:
        metadata["data_as_of"] = dg.MetadataValue.timestamp(result.snapshot_at)
    return metadata


def column_schema(conn: psycopg.Connection, view: ManagedView) -> dg.TableSchema:
    """The view's columns with their types and COMMENTs (materialized views are not
    in information_schema, hence pg_attribute)."""
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
           FROM pg_attribute a
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        (view.qualified_name,),
    ).fetchall()
    return dg.TableSchema(
        columns=[dg.TableColumn(name=n, type=t, description=d) for n, t, d in rows]
    )


def build_view_assets(views: Iterable[ManagedView] = VIEWS) -> list[dg.AssetsDefinition]:
    return [build_view_asset(v) for v in views]


SOURCE_SPECS: list[dg.AssetSpec] = build_source_specs()
VIEW_ASSETS: list[dg.AssetsDefinition] = build_view_assets()
VIEW_ASSET_BY_NAME: dict[str, dg.AssetsDefinition] = {
    v.name: a for v, a in zip(VIEWS, VIEW_ASSETS, strict=True)
}
