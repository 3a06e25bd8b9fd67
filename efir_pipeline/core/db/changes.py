"""The change log (migration 0004): what a view does not reflect yet, and pruning.

Dagster-free, so the sensors, the freshness check, the CLI and the tests share it.

"Reflected" has one meaning everywhere: a change (one ``change_log`` row) is reflected
by a refresh when the writing transaction is visible in the snapshot the refresh
recorded right before its REFRESH statement (``mv_refresh_log.reflected_snapshot``).
Change ids are not a watermark: they are handed out when a statement runs, not when
its transaction commits, so a lower id can become visible after a higher one.
A snapshot says exactly which transactions a reader saw, so it serves as the cursor
too: a sensor that remembers the snapshot at which it last requested a view's
refresh sees each later change exactly once, whatever order ids commit in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import VIEWS, ManagedView, views_reading
from efir_pipeline.core.rules import (
    Change,
    Classified,
    RefreshRules,
    classify,
    may_be_above_low_sql,
    sql_parameters,
)
from efir_pipeline.core.values import Duration

_SNAPSHOT = re.compile(r"^(\d+):(\d+):([\d,]*)$")
LEVEL_COUNT_FALLBACK = 15


def tables_for(view: ManagedView) -> list[str]:
    """The tables whose changes make ``view`` stale: those ``views_reading`` maps to it."""
    tables = dict.fromkeys(t for v in VIEWS for t in v.source_tables)
    return [t for t in tables if view.name in {v.name for v in views_reading(t)}]


def snapshot_xmin(snapshot: str | None) -> int:
    """The xmin of a ``pg_snapshot`` text (``xmin:xmax:xip,...``); 0 for none."""
    if not snapshot:
        return 0
    match = _SNAPSHOT.match(snapshot.strip())
    if not match:
        raise ValueError(f"not a pg_snapshot: {snapshot!r}")
    return int(match.group(1))


def is_snapshot(text: object) -> bool:
    return isinstance(text, str) and _SNAPSHOT.match(text.strip()) is not None


@dataclass(frozen=True)
class Outstanding:
    """The changes of one view's tables that neither its last successful refresh
    reflects nor an earlier request (the caller's snapshot) already covers."""

    view: str
    count: int
    """How many there are, whatever their priority."""
    max_id: int | None
    candidates: list[Change]
    """Those that may be above low priority (the rest are surely low and not fetched)."""
    reflected_snapshot: str | None


@dataclass(frozen=True)
class ChangeRead:
    """One consistent reading of the log (a single REPEATABLE READ snapshot)."""

    snapshot: str
    """``pg_current_snapshot()`` of the reading: a request made now covers exactly the
    changes visible in it."""
    now: datetime
    total_levels: int
    views: dict[str, Outstanding]


_OUTSTANDING = """
WITH o AS (
    SELECT c.*, sum(c.rows_affected) OVER (PARTITION BY c.txid, c.table_name)::bigint AS txn_rows
    FROM efir_budget.change_log c
    WHERE c.table_name = ANY(%(tables)s)
      AND c.txid >= %(floor)s
      AND NOT coalesce(pg_visible_in_snapshot(c.txid::text::xid8, %(reflected)s::pg_snapshot), false)
      AND NOT coalesce(pg_visible_in_snapshot(c.txid::text::xid8, %(requested)s::pg_snapshot), false)
), summary AS (
    SELECT count(*) AS n, max(id) AS max_id FROM o
)
SELECT s.n, s.max_id, o.id, o.table_name, o.budget_version_id, o.operation, o.rows_affected,
       o.old_status::text AS old_status, o.new_status::text AS new_status, o.level_ids, o.txid,
       o.changed_at, o.txn_rows
FROM summary s
LEFT JOIN o ON {may_be_above_low}
ORDER BY o.id
"""


def read_outstanding(
    conn: psycopg.Connection,
    views: Iterable[ManagedView],
    requested: Mapping[str, str | None],
    rules: RefreshRules,
) -> ChangeRead:
    """Outstanding changes of each view, all read in one REPEATABLE READ snapshot.

    ``requested[view]`` is the snapshot at which the caller last requested the view's
    refresh (None: never). ``conn`` must be in autocommit mode (the transaction here
    is a real one). Whole transactions are returned (their log rows become visible
    together), so ``rules.classify`` sees transaction-wide totals.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot, now, levels = conn.execute(
            """SELECT pg_current_snapshot()::text, now(),
                      (SELECT count(*) FROM efir_budget.academic_levels WHERE deleted_at IS NULL)"""
        ).fetchone()
        out = {}
        for view in views:
            out[view.name] = _outstanding(conn, view, requested.get(view.name), rules)
    return ChangeRead(snapshot, now, int(levels) or LEVEL_COUNT_FALLBACK, out)


def _outstanding(
    conn: psycopg.Connection, view: ManagedView, requested: str | None, rules: RefreshRules
) -> Outstanding:
    reflected = conn.execute(
        "SELECT efir_budget.last_reflected_snapshot(%s)::text", (view.name,)
    ).fetchone()[0]
    params = {
        "tables": tables_for(view),
        # Every transaction older than a snapshot's xmin had ended when it was taken.
        "floor": max(snapshot_xmin(reflected), snapshot_xmin(requested)),
        "reflected": reflected,
        "requested": requested,
        **sql_parameters(rules),
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _OUTSTANDING.format(may_be_above_low=may_be_above_low_sql()), params
        ).fetchall()
    candidates = [_change(r) for r in rows if r["id"] is not None]
    return Outstanding(view.name, rows[0]["n"], rows[0]["max_id"], candidates, reflected)


def _change(row: Mapping) -> Change:
    return Change(
        id=row["id"],
        table_name=row["table_name"],
        budget_version_id=row["budget_version_id"],
        operation=row["operation"],
        rows_affected=row["rows_affected"],
        old_status=row["old_status"],
        new_status=row["new_status"],
        level_ids=tuple(row["level_ids"]) if row["level_ids"] is not None else None,
        txid=row["txid"],
        changed_at=row["changed_at"],
        txn_rows=row["txn_rows"],
    )


def unreflected_changes(conn: psycopg.Connection, view: ManagedView) -> list[Change]:
    """Every change the view's last successful refresh does not reflect (oldest first)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT id, table_name, budget_version_id, operation, rows_affected,
                      old_status::text AS old_status, new_status::text AS new_status,
                      level_ids, txid, changed_at, txn_rows
               FROM efir_budget.unreflected_changes(%s)""",
            (view.name,),
        ).fetchall()
    return [_change(r) for r in rows]


def level_count(conn: psycopg.Connection) -> int:
    """Live academic levels: the denominator of the "share of a version's levels" rule."""
    levels = conn.execute(
        "SELECT count(*) FROM efir_budget.academic_levels WHERE deleted_at IS NULL"
    ).fetchone()[0]
    return int(levels) or LEVEL_COUNT_FALLBACK


def classified_unreflected(
    conn: psycopg.Connection, view: ManagedView, rules: RefreshRules
) -> list[Classified]:
    """Every change the view does not reflect yet, with its priority and the reason."""
    return classify(unreflected_changes(conn, view), rules, level_count(conn))


def prune(conn: psycopg.Connection, retention: Duration) -> int:
    """Delete change-log rows older than ``retention`` that every reading view reflects.

    Unreflected rows stay whatever their age, so the freshness check keeps seeing them.
    """
    return conn.execute(
        "SELECT efir_budget.prune_change_log(%s::interval)", (retention.interval(),)
    ).fetchone()[0]
