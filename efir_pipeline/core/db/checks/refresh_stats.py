"""How long refreshes take and how big a view is: the two checks that only warn.

Both read what is already recorded (``mv_refresh_log``, the view's size), so they
cost nothing and run after every refresh.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db.checks.result import (
    MB,
    WARN,
    HealthResult,
    Thresholds,
    ident,
    is_populated,
    never_populated,
)

REFRESH_DURATION = "refresh_duration"
VIEW_SIZE = "view_size"


def refresh_duration(
    conn: psycopg.Connection, view: ManagedView, thresholds: Thresholds
) -> HealthResult:
    """The last successful refresh's duration against the limit, with the recent trend.

    Only ``success`` rows count: a coalesced request did no work and a failed one
    says nothing about how long a refresh takes.
    """
    rows = conn.execute(
        """SELECT id, duration_seconds, snapshot_at FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success'
           ORDER BY snapshot_at DESC, id DESC LIMIT %s""",
        (view.name, max(thresholds.trend_length, 1)),
    ).fetchall()
    limit = thresholds.duration_limit_seconds
    if not rows:
        return HealthResult(
            REFRESH_DURATION,
            view.name,
            True,
            WARN,
            f"no successful refresh of {view.name} recorded yet",
            {"limit_seconds": limit, "refreshes": 0},
        )
    trend = [round(float(d), 3) for _, d, _ in reversed(rows)]  # oldest first
    latest_id, latest, snapshot_at = rows[0]
    latest = float(latest)
    median = statistics.median(trend)
    over = sum(1 for d in trend if d > limit)
    passed = latest <= limit
    description = (
        f"last refresh took {latest:.3f}s "
        f"({'within' if passed else 'over'} the {limit:g}s limit; "
        f"median of the last {len(trend)}: {median:.3f}s)"
    )
    return HealthResult(
        REFRESH_DURATION,
        view.name,
        passed,
        WARN,
        description,
        {
            "duration_seconds": round(latest, 3),
            "limit_seconds": limit,
            "refresh_log_id": latest_id,
            "refreshed_at": snapshot_at,
            "trend_seconds": trend,
            "trend_median_seconds": round(median, 3),
            "trend_max_seconds": max(trend),
            "trend_over_limit": over,
            "trend_change_percent": _change_percent(trend),
        },
    )


def _change_percent(trend: Sequence[float]) -> float | None:
    """How much slower the newer half of the trend is than the older half (median vs median)."""
    if len(trend) < 4:
        return None
    half = len(trend) // 2
    older, newer = statistics.median(trend[:half]), statistics.median(trend[half:])
    if older <= 0:
        return None
    return round((newer - older) / older * 100, 1)


def view_size(conn: psycopg.Connection, view: ManagedView, thresholds: Thresholds) -> HealthResult:
    """Table plus indexes (``pg_total_relation_size``) against the limit, with rows."""
    if not is_populated(conn, view):
        return never_populated(VIEW_SIZE, view, WARN)
    size, rows = conn.execute(
        sql.SQL("SELECT pg_total_relation_size({}::regclass), (SELECT count(*) FROM {})").format(
            sql.Literal(view.qualified_name), ident(view)
        )
    ).fetchone()
    limit = thresholds.size_limit_bytes
    passed = size <= limit
    return HealthResult(
        VIEW_SIZE,
        view.name,
        passed,
        WARN,
        f"{view.name} takes {size / MB:.2f} MB for {rows:,} rows "
        f"({'within' if passed else 'over'} the {limit / MB:g} MB limit)",
        {
            "size_bytes": size,
            "size_mb": round(size / MB, 3),
            "limit_mb": round(limit / MB, 3),
            "row_count": rows,
            "bytes_per_row": round(size / rows) if rows else None,
        },
    )
