"""A refresh in Dagster's terms: the same metadata and data versions whoever made it.

A refresh run by Dagster and one reported afterwards (the CLI's, the app's, a DBA's,
see ``efir_pipeline.defs.reporting``) are both described from their history row
(``efir_budget.mv_refresh_log``), so the UI cannot tell them apart but by ``trigger``.

Data versions follow the change log, so Dagster's staleness agrees with it:

- a source table's version is the id of its latest change (``INITIAL``, Dagster's word
  for "never observed", while it has none);
- a view records, as the version of each table it reads, the table's version *in the
  snapshot its refresh reflected*; its own version digests those and its code version;
- the view is stale in Dagster exactly when a table moved on since, that is, when the
  change log holds a change the refresh did not reflect. (One blind spot: two
  transactions on one table committing out of id order; the lower id then leaves the
  version unchanged until the next change. The sensors and the freshness checks, which
  use snapshots, still see it.)

The tag names are Dagster's own (``dagster/data_version`` and friends); a test
confirms Dagster reads them back as provenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import dagster as dg
import psycopg

from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db import activity
from efir_pipeline.core.db.activity import Refresh, TableActivity
from efir_pipeline.defs.annotations import code_version, column_lineage
from efir_pipeline.defs.keys import source_asset_key, view_asset_key

DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_DATA_VERSION_TAG = "dagster/input_data_version/{}"
INPUT_EVENT_POINTER_TAG = "dagster/input_event_pointer/{}"
"""Dagster's storage id of the input's event; it needs the key present ("NULL": not
known), and compares versions, not pointers, for unpartitioned assets."""
USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
NEVER_CHANGED = "INITIAL"

Versions = Mapping[str, int | None]


def table_version(version: int | None) -> str:
    return NEVER_CHANGED if version is None else str(version)


def view_data_version(view: ManagedView, versions: Versions) -> str:
    """A digest of the view's code version and the versions of every table it reads."""
    tables = sorted(catalog.lineage_sources(view))
    text = code_version(view) + "".join(f"|{t}={table_version(versions.get(t))}" for t in tables)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance_tags(view: ManagedView, versions: Versions) -> dict[str, str]:
    """Dagster's provenance tags for a refresh that saw ``versions``."""
    tags = {
        CODE_VERSION_TAG: code_version(view),
        DATA_VERSION_TAG: view_data_version(view, versions),
        USER_PROVIDED_TAG: "true",
    }
    inputs = {source_asset_key(t): table_version(versions.get(t)) for t in view.source_tables}
    for name in view.depends_on:
        inputs[view_asset_key(name)] = view_data_version(catalog.get_view(name), versions)
    for key, version in inputs.items():
        tags[INPUT_DATA_VERSION_TAG.format(key.to_user_string())] = version
        tags[INPUT_EVENT_POINTER_TAG.format(key.to_user_string())] = "NULL"
    return tags


def refresh_metadata(view: ManagedView, refresh: Refresh) -> dict[str, object]:
    """What the asset shows of one successful refresh."""
    metadata: dict[str, object] = {
        # Dagster's table conventions: the UI shows these as table name and row count.
        "dagster/table_name": dg.MetadataValue.text(view.qualified_name),
        "outcome": refresh.outcome,
        "trigger": refresh.trigger,
        "refreshed_by": refresh.refreshed_by,
        "duration_seconds": dg.MetadataValue.float(float(refresh.duration_seconds)),
        "wait_seconds": dg.MetadataValue.float(float(refresh.wait_seconds)),
        "concurrently": bool(refresh.ran_concurrently),
        "refresh_log_id": dg.MetadataValue.int(refresh.id),
    }
    if refresh.mode is not None:
        metadata["mode"] = refresh.mode
    if refresh.versions_recomputed is not None:
        metadata["versions_recomputed"] = dg.MetadataValue.int(refresh.versions_recomputed)
    if refresh.row_count is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(refresh.row_count)
    if refresh.size_bytes is not None:
        metadata["size_bytes"] = dg.MetadataValue.int(refresh.size_bytes)
        metadata["size_mb"] = dg.MetadataValue.float(round(refresh.size_bytes / 1_048_576, 3))
    if refresh.snapshot_at is not None:
        metadata["data_as_of"] = dg.MetadataValue.timestamp(refresh.snapshot_at)
    lineage = column_lineage(view)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
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


def describe_refresh(
    conn: psycopg.Connection, view: ManagedView, refresh: Refresh
) -> tuple[dict[str, object], dict[str, str]]:
    """(metadata, tags) of a successful refresh: its history row, the view's columns,
    and the table versions it reflected (no provenance when it recorded no snapshot)."""
    metadata = refresh_metadata(view, refresh)
    metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(column_schema(conn, view))
    versions = activity.versions_at(conn, refresh, catalog.lineage_sources(view))
    return metadata, provenance_tags(view, versions) if versions is not None else {}


def materialization(
    conn: psycopg.Connection, view: ManagedView, refresh: Refresh
) -> dg.AssetMaterialization:
    """A refresh made outside a Dagster run, as the materialization a run would record."""
    metadata, tags = describe_refresh(conn, view, refresh)
    return dg.AssetMaterialization(
        asset_key=view_asset_key(view),
        description=f"Refreshed outside Dagster ({refresh.trigger}, by {refresh.refreshed_by}).",
        metadata=metadata,
        tags=tags,
    )


def observation(table: TableActivity) -> dg.AssetObservation:
    """A source table's changes since the last observation, from the change log."""
    metadata: dict[str, object] = {
        "changes": dg.MetadataValue.int(table.changes),
        "rows_changed": dg.MetadataValue.int(table.rows_changed),
        "pending_changes": dg.MetadataValue.int(table.pending_changes),
    }
    if table.last_change_at is not None:
        metadata["last_change_at"] = dg.MetadataValue.timestamp(table.last_change_at)
    if table.version is not None:
        metadata["latest_change_id"] = dg.MetadataValue.int(table.version)
    return dg.AssetObservation(
        asset_key=source_asset_key(table.table),
        metadata=metadata,
        tags={DATA_VERSION_TAG: table_version(table.version), USER_PROVIDED_TAG: "true"},
    )
