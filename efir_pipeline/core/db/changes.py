"""The change log: what a view does not reflect yet, and pruning.

Dagster-free, so the sensors, the freshness check, the CLI and the tests share it.

"Reflected" has one meaning everywhere, and one definition, in SQL
(``efir_budget.is_reflected``, used by ``efir_budget.outstanding_changes`` which this
module reads): a change is reflected by a refresh when the writing transaction is
visible in the snapshot the refresh recorded right before its REFRESH statement
(``mv_refresh_log.reflected_snapshot``), the two compared only when taken in the same
cluster (a restore into another one starts a new transaction counter).
Change ids are not a watermark: they are handed out when a statement runs, not when
its transaction commits, so a lower id can become visible after a higher one.
A snapshot says exactly which transactions a reader saw, so it serves as the cursor
too: a sensor that remembers the snapshot at which it last requested a view's
refresh (and the cluster it was taken in) sees each later change exactly once,
whatever order ids commit in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import ManagedView
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
    origin: int | None = None
    """``efir_budget.cluster_id()``: where ``snapshot`` means something."""


Requested = tuple[str, int | None]
"""A snapshot at which a view's refresh was requested, and the cluster it was taken in."""


# The outstanding changes of a view (efir_budget.outstanding_changes: the one "reflected"
# rule), counted, and those that may be above low priority fetched.
_OUTSTANDING = """
WITH o AS MATERIALIZED (
    SELECT * FROM efir_budget.outstanding_changes(
        %(view)s, %(requested)s::pg_snapshot, %(requested_origin)s::bigint)
), summary AS (
    SELECT count(*) AS n, max(id) AS max_id FROM o
)
SELECT s.n, s.max_id, o.id, o.table_name, o.budget_version_id, o.operation, o.rows_affected,
       o.old_status, o.new_status, o.level_ids, o.txid, o.changed_at, o.txn_rows
FROM summary s
LEFT JOIN o ON {may_be_above_low}
ORDER BY o.id
"""


def read_outstanding(
    conn: psycopg.Connection,
    views: Iterable[ManagedView],
    requested: Mapping[str, Requested | None],
    rules: RefreshRules,
) -> ChangeRead:
    """Outstanding changes of each view, all read in one REPEATABLE READ snapshot.

    ``requested[view]`` is the snapshot (with its origin) at which the caller last
    requested the view's refresh (None: never). ``conn`` must be in autocommit mode (the transaction here
    is a real one). Whole transactions are returned (their log rows become visible
    together), so ``rules.classify`` sees transaction-wide totals.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot, origin, now = conn.execute(
            "SELECT pg_current_snapshot()::text, efir_budget.cluster_id(), now()"
        ).fetchone()
        levels = level_count(conn)
        out = {}
        for view in views:
            out[view.name] = _outstanding(conn, view, requested.get(view.name), rules)
    return ChangeRead(snapshot, now, levels, out, origin)


def _outstanding(
    conn: psycopg.Connection,
    view: ManagedView,
    requested: Requested | None,
    rules: RefreshRules,
) -> Outstanding:
    reflected = conn.execute(
        "SELECT reflected_snapshot::text FROM efir_budget.last_reflection(%s)", (view.name,)
    ).fetchone()[0]
    snapshot, origin = requested or (None, None)
    params = {
        "view": view.name,
        "requested": snapshot,
        "requested_origin": origin,
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
            "SELECT * FROM efir_budget.outstanding_changes(%s, NULL, NULL)",
            (view.name,),
        ).fetchall()
    return [_change(r) for r in rows]


def level_count(conn: psycopg.Connection) -> int:
    """Live academic levels: the denominator of the "share of a version's levels" rule."""
    levels = conn.execute("SELECT count(*) FROM efir_budget.academic_levels").fetchone()[0]
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
