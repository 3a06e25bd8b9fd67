"""What happened in the database since a reader last looked: refreshes and source changes.

Dagster shows a view as materialized only when it hears of it, and most refreshes are
made where Dagster cannot see them (``efir-pipeline refresh``, ``prepare``, the app's
REFRESH, a DBA in psql). The history records every one of them, and the change log
every write; this module reads both *since a mark*, for the sensor that reports them.

A mark is a snapshot and the cluster it was taken in, not an id: ids are drawn when a
row is written and become visible at commit, so a lower id can appear after a higher
one was read. A row is new to a reader exactly when its transaction is not visible in
the reader's last snapshot (``efir_budget.is_reflected``, the same rule the change log
uses), so each is reported once, whatever order transactions commit in.

A table's *version* is the id of its latest change a snapshot sees. It is what Dagster
compares to tell a stale view: the version of each table a refresh reflected (read at
its ``reflected_snapshot``) against the table's version now. Pruning keeps each
table's latest change, so it never moves a version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import ManagedView


@dataclass(frozen=True)
class Mark:
    """Where a reader stood: ``pg_current_snapshot()`` and ``efir_budget.cluster_id()``."""

    snapshot: str
    origin: int


@dataclass(frozen=True)
class Refresh:
    """One row of ``efir_budget.mv_refresh_log``."""

    id: int
    view_name: str
    outcome: str
    trigger: str
    run_id: str | None
    refreshed_by: str
    requested_at: datetime
    snapshot_at: datetime | None
    finished_at: datetime
    wait_seconds: float
    duration_seconds: float
    ran_concurrently: bool | None
    row_count: int | None
    size_bytes: int | None
    mode: str | None
    versions_recomputed: int | None
    reflected_snapshot: str | None
    snapshot_origin: int | None


@dataclass(frozen=True)
class TableActivity:
    """One source table's changes since a mark, and where it stands now."""

    table: str
    changes: int
    """change_log rows since the mark (one per statement and budget version)."""
    rows_changed: int
    """Rows those statements wrote (a TRUNCATE counts none: its size is unknown)."""
    last_change_at: datetime | None
    pending_changes: int
    """Changes of the table some view reading it does not reflect yet."""
    version: int | None
    """Its latest change's id (None: no change logged yet)."""


@dataclass(frozen=True)
class Activity:
    """One consistent reading (a single REPEATABLE READ snapshot, which ``mark`` is)."""

    mark: Mark
    refreshes: list[Refresh]
    tables: list[TableActivity]


_REFRESH_COLUMNS = """
    l.id, l.view_name, l.outcome, l.trigger, l.run_id, l.refreshed_by, l.requested_at,
    l.snapshot_at, l.finished_at, l.wait_seconds, l.duration_seconds, l.ran_concurrently,
    l.row_count, l.size_bytes, l.mode, l.versions_recomputed, l.reflected_snapshot::text,
    l.snapshot_origin
"""

# Successes not made by a Dagster run, committed after the mark.
_REFRESHES_SINCE = f"""
SELECT {_REFRESH_COLUMNS}
FROM efir_budget.mv_refresh_log l
WHERE l.outcome = 'success' AND l.run_id IS NULL
  AND l.txid >= efir_budget.txid_floor(%(snapshot)s::pg_snapshot, %(origin)s)
  AND NOT efir_budget.is_reflected(l.txid, l.origin, %(snapshot)s::pg_snapshot, %(origin)s)
ORDER BY l.id
"""

# Without a mark: each view's latest success (the state Dagster should show now).
_LATEST_SUCCESSES = f"""
SELECT DISTINCT ON (l.view_name) {_REFRESH_COLUMNS}
FROM efir_budget.mv_refresh_log l
WHERE l.outcome = 'success'
ORDER BY l.view_name, l.snapshot_at DESC, l.id DESC
"""

_NEW_CHANGES = """
SELECT c.table_name, count(*) AS changes, coalesce(sum(c.rows_affected), 0) AS rows_changed
FROM efir_budget.change_log c
WHERE c.table_name = ANY(%(tables)s)
  AND c.txid >= coalesce(efir_budget.txid_floor(%(snapshot)s::pg_snapshot, %(origin)s), 0)
  AND NOT efir_budget.is_reflected(c.txid, c.origin, %(snapshot)s::pg_snapshot, %(origin)s)
GROUP BY c.table_name
"""

_LATEST_CHANGES = """
SELECT t.table_name, last.id, last.changed_at
FROM unnest(%(tables)s::text[]) AS t(table_name)
LEFT JOIN LATERAL (
    SELECT c.id, c.changed_at FROM efir_budget.change_log c
    WHERE c.table_name = t.table_name ORDER BY c.id DESC LIMIT 1
) last ON true
"""

_PENDING = """
SELECT o.table_name, count(DISTINCT o.id)
FROM unnest(%(views)s::text[]) AS v(view_name),
     efir_budget.outstanding_changes(v.view_name, NULL, NULL) o
GROUP BY o.table_name
"""

# The latest change of each table a snapshot sees (is_reflected: origins respected).
_VERSIONS_AT = """
SELECT t.table_name,
       (SELECT c.id FROM efir_budget.change_log c
        WHERE c.table_name = t.table_name
          AND efir_budget.is_reflected(c.txid, c.origin, %(snapshot)s::pg_snapshot, %(origin)s)
        ORDER BY c.id DESC LIMIT 1)
FROM unnest(%(tables)s::text[]) AS t(table_name)
"""


def read_activity(
    conn: psycopg.Connection,
    since: Mark | None,
    views: Sequence[ManagedView],
    tables: Sequence[str],
) -> Activity:
    """Refreshes and source changes since ``since`` (None: the current state), and the
    mark to pass next time. ``conn`` must be in autocommit mode."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot, origin = conn.execute(
            "SELECT pg_current_snapshot()::text, efir_budget.cluster_id()"
        ).fetchone()
        refreshes = _refreshes(conn, since)
        activity = _tables(conn, since, views, tables)
    return Activity(Mark(snapshot, origin), refreshes, activity)


def _refreshes(conn: psycopg.Connection, since: Mark | None) -> list[Refresh]:
    with conn.cursor(row_factory=dict_row) as cur:
        if since is None:
            rows = cur.execute(_LATEST_SUCCESSES).fetchall()
            rows = [r for r in rows if r["run_id"] is None]
        else:
            rows = cur.execute(_REFRESHES_SINCE, _mark_params(since)).fetchall()
    return [Refresh(**r) for r in rows]


def _tables(
    conn: psycopg.Connection,
    since: Mark | None,
    views: Sequence[ManagedView],
    tables: Sequence[str],
) -> list[TableActivity]:
    params = {"tables": list(tables), "views": [v.name for v in views], **_mark_params(since)}
    new = {t: (n, rows) for t, n, rows in conn.execute(_NEW_CHANGES, params).fetchall()}
    latest = {t: (i, at) for t, i, at in conn.execute(_LATEST_CHANGES, params).fetchall()}
    pending = dict(conn.execute(_PENDING, params).fetchall())
    return [
        TableActivity(
            table=t,
            changes=int(new.get(t, (0, 0))[0]),
            rows_changed=int(new.get(t, (0, 0))[1]),
            last_change_at=latest[t][1],
            pending_changes=int(pending.get(t, 0)),
            version=latest[t][0],
        )
        for t in tables
    ]


def table_activity(
    conn: psycopg.Connection, views: Sequence[ManagedView], tables: Sequence[str]
) -> list[TableActivity]:
    """Where each table stands now (its changes counted since the log began)."""
    return _tables(conn, None, views, tables)


def _mark_params(mark: Mark | None) -> dict[str, Any]:
    return {
        "snapshot": mark.snapshot if mark else None,
        "origin": mark.origin if mark else None,
    }


def refresh_record(conn: psycopg.Connection, log_id: int) -> Refresh | None:
    """The history row ``log_id``."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_REFRESH_COLUMNS} FROM efir_budget.mv_refresh_log l WHERE l.id = %s",
            (log_id,),
        ).fetchone()
    return Refresh(**row) if row else None


def last_success(conn: psycopg.Connection, view: ManagedView) -> Refresh | None:
    """The view's latest successful refresh (what a coalesced request got)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"""SELECT {_REFRESH_COLUMNS} FROM efir_budget.mv_refresh_log l
                WHERE l.view_name = %s AND l.outcome = 'success'
                ORDER BY l.snapshot_at DESC, l.id DESC LIMIT 1""",
            (view.name,),
        ).fetchone()
    return Refresh(**row) if row else None


def versions_at(
    conn: psycopg.Connection, refresh: Refresh, tables: Iterable[str]
) -> Mapping[str, int | None] | None:
    """Each table's version as the refresh reflected it; None when the refresh recorded
    no snapshot (it then claims nothing)."""
    if refresh.reflected_snapshot is None:
        return None
    rows = conn.execute(
        _VERSIONS_AT,
        {
            "tables": list(tables),
            "snapshot": refresh.reflected_snapshot,
            "origin": refresh.snapshot_origin,
        },
    ).fetchall()
    return dict(rows)
