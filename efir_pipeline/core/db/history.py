"""The refresh history people read: every attempt, with the lag each success closed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import ManagedView

HISTORY_COLUMNS = (
    "id",
    "view_name",
    "outcome",
    "trigger",
    "run_id",
    "refreshed_by",
    "requested_at",
    "snapshot_at",
    "finished_at",
    "wait_seconds",
    "duration_seconds",
    "ran_concurrently",
    "row_count",
    "size_bytes",
    "mode",
    "versions_recomputed",
    "oldest_reflected_change_at",
    "reflected_changes",
    "lag_closed_seconds",
    "error",
)


def refresh_history(
    conn: psycopg.Connection,
    views: Sequence[ManagedView] | None = None,
    *,
    since: datetime | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The latest refresh attempts, newest first, with the lag each success closed.

    Reads ``efir_budget.refresh_history``: ``mv_refresh_log`` with the lag columns.
    """
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in HISTORY_COLUMNS)
    conditions = [sql.SQL("true")]
    params: dict[str, Any] = {"limit": limit}
    if views:
        conditions.append(sql.SQL("view_name = ANY(%(views)s)"))
        params["views"] = [v.name for v in views]
    if since is not None:
        conditions.append(sql.SQL("finished_at >= %(since)s"))
        params["since"] = since
    query = sql.SQL(
        "SELECT {} FROM efir_budget.refresh_history WHERE {} ORDER BY id DESC LIMIT %(limit)s"
    ).format(columns, sql.SQL(" AND ").join(conditions))
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()
