"""``efir-pipeline refresh | info | history | kpis | prune``: the views, day to day."""

from __future__ import annotations

import argparse
import sys

from psycopg.rows import dict_row

from efir_pipeline.cli.arguments import bounded_int, since
from efir_pipeline.cli.output import render, to_json
from efir_pipeline.core import catalog, settings
from efir_pipeline.core.db import changes
from efir_pipeline.core.db.connection import connection
from efir_pipeline.core.db.history import refresh_history
from efir_pipeline.core.db.info import view_info
from efir_pipeline.core.db.migrate import require_current
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult
from efir_pipeline.core.values import Duration, human_duration

ROWS = bounded_int(1, 1_000_000)


def _retention(text: str) -> Duration:
    """The same grammar and range as EFIR_CHANGE_LOG_RETENTION."""
    kind = next(s.kind for s in settings.specs() if s.env == "EFIR_CHANGE_LOG_RETENTION")
    try:
        return kind.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


KPI_COLUMNS = (
    "version_name",
    "fiscal_year",
    "status",
    "total_students",
    "total_classes",
    "students_per_class",
    "total_fte_required",
    "total_allocated_fte",
    "total_revenue_sar",
    "total_personnel_costs_sar",
    "net_budget_sar",
    "budget_margin_percent",
    "hours_per_student",
)


def register(commands) -> None:
    refresh = commands.add_parser(
        "refresh", help="refresh views (default: all, in dependency order)"
    )
    refresh.add_argument("views", nargs="*", metavar="VIEW", help=", ".join(catalog.view_names()))
    refresh.add_argument(
        "--no-wait",
        action="store_true",
        help="skip (outcome skipped, exit status 0) a view another process is refreshing",
    )
    refresh.add_argument(
        "--trigger", default="manual", help="recorded in the history (default: manual)"
    )
    refresh.add_argument(
        "--full",
        action="store_true",
        help="recompute every version, also for incremental (per_version) views, and rewrite "
        "their cache (what the nightly schedule does)",
    )
    refresh.add_argument("--json", action="store_true", help="machine-readable output")
    refresh.set_defaults(handler=refresh_views)

    info = commands.add_parser("info", help="rows, size and freshness of views")
    info.add_argument("views", nargs="*", metavar="VIEW")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=show_info)

    history = commands.add_parser(
        "history", help="last refreshes: duration, rows, size, outcome, trigger, lag closed"
    )
    history.add_argument("views", nargs="*", metavar="VIEW", help="default: every view")
    history.add_argument(
        "--since",
        type=since,
        help="only attempts finished since: 2h, 7d, 2026-01-15, 2026-01-15T10:00",
    )
    history.add_argument("--limit", type=ROWS, default=20, help="rows (default: 20)")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.set_defaults(handler=show_history)

    kpis = commands.add_parser("kpis", help="print the KPI dashboard rows")
    kpis.add_argument("--fiscal-year", type=bounded_int(1900, 2999))
    kpis.add_argument("--limit", type=ROWS, default=50)
    kpis.add_argument("--json", action="store_true", help="all columns, machine-readable")
    kpis.set_defaults(handler=show_kpis)

    prune = commands.add_parser(
        "prune",
        help="delete change-log rows older than the retention that every view reflects "
        "(what the nightly Dagster schedule does; run it from cron without Dagster)",
    )
    prune.add_argument(
        "--retention",
        type=_retention,
        help="default: EFIR_CHANGE_LOG_RETENTION (30d); unreflected rows always stay",
    )
    prune.set_defaults(handler=prune_change_log)


def refresh_views(args) -> int:
    views = catalog.resolve_views(args.views)  # validates every name before any SQL runs
    with connection(autocommit=True) as conn:
        require_current(conn)
    results, failed = [], set()
    for view in views:
        blocked_by = failed.intersection(view.depends_on)
        if blocked_by:
            print(
                f"{view.name}: not refreshed, {', '.join(sorted(blocked_by))} failed",
                file=sys.stderr,
            )
            failed.add(view.name)
            continue
        if not args.json:
            print(f"refreshing {view.name} ...", file=sys.stderr, flush=True)
        result = refresh_view(view, wait=not args.no_wait, trigger=args.trigger, full=args.full)
        results.append(result)
        # A skip is what --no-wait asked for: another process is refreshing that view.
        if not result.ok and result.outcome != "skipped":
            failed.add(view.name)
    print(to_json([r.as_dict() for r in results]) if args.json else _results_table(results))
    return 1 if failed else 0


def _results_table(results: list[RefreshResult]) -> str:
    return render(
        [
            {
                "view": r.view,
                "outcome": r.outcome,
                "seconds": r.duration_seconds,
                "waited": r.wait_seconds,
                "rows": r.row_count,
                "size_bytes": r.size_bytes,
                "concurrently": r.concurrently,
                "mode": r.mode,
                "versions": r.versions_recomputed,
                "history_id": r.log_id,
                "error": r.error,
            }
            for r in results
        ]
    )


def show_info(args) -> int:
    views = catalog.resolve_views(args.views)
    with connection(autocommit=True) as conn:
        require_current(conn)
        infos = [view_info(conn, v) for v in views]
    if args.json:
        print(to_json(infos))
        return 0
    columns = (
        "view",
        "populated",
        "row_count",
        "size_bytes",
        "data_as_of",
        "last_refresh_seconds",
        "last_outcome",
        "oldest_unreflected_change_at",
    )
    print(render(infos, columns))
    return 0


def show_history(args) -> int:
    views = catalog.resolve_views(args.views) if args.views else None  # names checked first
    with connection(autocommit=True) as conn:
        require_current(conn)
        rows = refresh_history(conn, views, since=args.since, limit=args.limit)
    if args.json:
        print(to_json([{"view": r.pop("view_name"), **r} for r in rows]))
        return 0
    table = [
        {
            **row,
            "view": row["view_name"],
            "seconds": row["duration_seconds"],
            "waited": row["wait_seconds"],
            "rows": row["row_count"],
            "lag_closed": None
            if row["lag_closed_seconds"] is None
            else human_duration(row["lag_closed_seconds"]),
        }
        for row in rows
    ]
    columns = ("id", "finished_at", "view", "outcome", "trigger", "seconds", "waited", "rows",
               "size_bytes", "lag_closed", "error")  # fmt: skip
    print(render(table, columns))
    return 0


def show_kpis(args) -> int:
    with connection(autocommit=True) as conn:
        require_current(conn)
        where = "WHERE fiscal_year = %(fy)s" if args.fiscal_year is not None else ""
        rows = (
            conn.cursor(row_factory=dict_row)
            .execute(
                f"""SELECT * FROM efir_budget.mv_kpi_dashboard {where}
                    ORDER BY fiscal_year, version_name LIMIT %(limit)s""",
                {"fy": args.fiscal_year, "limit": args.limit},
            )
            .fetchall()
        )
    print(to_json(rows) if args.json else render(rows, KPI_COLUMNS))
    return 0


def prune_change_log(args) -> int:
    retention = args.retention or settings.current().change_log_retention
    with connection(autocommit=True) as conn:
        require_current(conn)
        deleted = changes.prune(conn, retention)
    print(f"pruned {deleted} reflected change-log row(s) older than {retention}")
    return 0
