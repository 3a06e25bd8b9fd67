"""``efir-pipeline``: migrations, refreshes, state and demo data from the shell.

Errors are one line on stderr and a non-zero exit status (2: bad usage or unknown
view, 3: database unreachable, 4: migrations not applied, 1: anything else), so
scripts and people both know what happened.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from efir_pipeline.cli.output import render, to_json
from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.connection import connection, database_url, require_schema
from efir_pipeline.core.db.info import view_info
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.errors import EfirError

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args) or 0
    except EfirError as exc:
        print(f"efir-pipeline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected database or migration error: one line, -v for more
        if args.verbose:
            raise
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(
            f"efir-pipeline: error: {type(exc).__name__}: {detail} (use -v for details)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("efir-pipeline: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efir-pipeline",
        description="Keep the EFIR KPI materialized views fresh. The database is DATABASE_URL, "
        "or the embedded PostgreSQL under the project data folder when it is unset.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="schema migrations (alembic)")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_commands.add_parser("upgrade", help="apply migrations (default: all)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=cmd_db_upgrade)
    down = db_commands.add_parser("downgrade", help="go back to REVISION (e.g. -1, base)")
    down.add_argument("revision")
    down.set_defaults(handler=cmd_db_downgrade)
    stamp = db_commands.add_parser(
        "stamp", help="mark REVISION as applied without running it (adopting existing tables)"
    )
    stamp.add_argument("revision")
    stamp.set_defaults(handler=cmd_db_stamp)
    current = db_commands.add_parser("current", help="show the applied and the latest revision")
    current.set_defaults(handler=cmd_db_current)
    roles = db_commands.add_parser(
        "roles",
        help="create the pipeline, dashboard and app roles and set least privileges (idempotent; "
        "run as the migration owner after every upgrade)",
    )
    roles.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    roles.add_argument("--pipeline-role", help="default: EFIR_ROLE_PIPELINE or efir_pipeline")
    roles.add_argument("--dashboard-role", help="default: EFIR_ROLE_DASHBOARD or efir_dashboard")
    roles.add_argument("--app-role", help="default: EFIR_ROLE_APP or efir_app")
    roles.add_argument(
        "--nologin",
        action="store_true",
        help="group roles (NOLOGIN) to GRANT to login users, instead of LOGIN roles",
    )
    roles.set_defaults(handler=cmd_db_roles)

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
    refresh.set_defaults(handler=cmd_refresh)

    info = commands.add_parser("info", help="rows, size and freshness of views")
    info.add_argument("views", nargs="*", metavar="VIEW")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=cmd_info)

    history = commands.add_parser(
        "history", help="last refreshes: duration, rows, size, outcome, trigger, lag closed"
    )
    history.add_argument("views", nargs="*", metavar="VIEW", help="default: every view")
    history.add_argument(
        "--since",
        type=_since,
        help="only attempts finished since: 2h, 7d, 2026-01-15, 2026-01-15T10:00",
    )
    history.add_argument("--limit", type=_positive, default=20, help="rows (default: 20)")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.set_defaults(handler=cmd_history)

    demo = commands.add_parser("demo-data", help="load realistic demo data")
    demo.add_argument("--scale", choices=["efir", "network"], default="efir")
    demo.add_argument("--orgs", type=_positive, help="number of schools (overrides --scale)")
    demo.add_argument("--versions-per-org", type=_positive, help="budget versions per school")
    demo.add_argument("--seed", type=int, default=42, help="same seed, same data (default: 42)")
    demo.add_argument(
        "--replace", action="store_true", help="replace the demo schools if they already exist"
    )
    demo.set_defaults(handler=cmd_demo_data)

    kpis = commands.add_parser("kpis", help="print the KPI dashboard rows")
    kpis.add_argument("--fiscal-year", type=int)
    kpis.add_argument("--limit", type=_positive, default=50)
    kpis.add_argument("--json", action="store_true", help="all columns, machine-readable")
    kpis.set_defaults(handler=cmd_kpis)

    prepare = commands.add_parser(
        "prepare", help="migrate, load demo data if the database is empty, refresh all views"
    )
    prepare.set_defaults(handler=cmd_prepare)

    start = commands.add_parser(
        "start", help="prepare (as above), then run the Dagster UI (dagster dev) until Ctrl-C"
    )
    start.add_argument("--host", default="127.0.0.1", help="UI host (default: 127.0.0.1)")
    start.add_argument("--port", type=int, default=3000, help="UI port (default: 3000)")
    start.add_argument(
        "--skip-prepare",
        action="store_true",
        help="start the UI at once: no migrations, demo data or first refresh",
    )
    start.set_defaults(handler=cmd_start)

    docs = commands.add_parser(
        "docs",
        help="render docs/reference.md from the catalog and the COMMENTs of the database "
        "(which must be at the latest migration)",
    )
    docs.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the file is stale"
    )
    docs.add_argument("--output", help="file to write or check (default: docs/reference.md)")
    docs.set_defaults(handler=cmd_docs)

    from efir_pipeline.cli import bench  # `efir-pipeline bench`: its options live with it

    bench.add_parser(commands)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_db_upgrade(args) -> int:
    migrate.upgrade(database_url(), args.revision)
    print(f"database at revision {migrate.current_revision(database_url())}")
    return 0


def cmd_db_downgrade(args) -> int:
    migrate.downgrade(database_url(), args.revision)
    print(f"database at revision {migrate.current_revision(database_url()) or 'base'}")
    return 0


def cmd_db_stamp(args) -> int:
    migrate.stamp(database_url(), args.revision)
    print(f"database stamped at {migrate.current_revision(database_url())}")
    return 0


def cmd_db_current(args) -> int:
    url = database_url()
    print(
        f"applied: {migrate.current_revision(url) or 'none'}\nlatest:  {migrate.head_revision(url)}"
    )
    return 0


def cmd_db_roles(args) -> int:
    from efir_pipeline.core.db import roles

    names = roles.RoleNames.from_env(
        pipeline=args.pipeline_role, dashboard=args.dashboard_role, app=args.app_role
    )
    plan, script = roles.apply(database_url(), names, login=not args.nologin, dry_run=args.dry_run)
    if args.dry_run:
        print(script)
        return 0
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    with connection(autocommit=True) as conn:
        matrix = roles.privilege_matrix(conn, names)
    print(render(matrix, ("object", "kind", "pipeline", "dashboard", "app")))
    created = ", ".join(plan.created) or "none"
    print(
        f"{len(plan.statements)} statements applied; roles created: {created}. "
        "Set passwords with ALTER ROLE ... PASSWORD (see docs/deploy.md).",
        file=sys.stderr,
    )
    return 0


def cmd_refresh(args) -> int:
    views = catalog.resolve_views(args.views)  # validates every name before any SQL runs
    with connection(autocommit=True) as conn:
        require_schema(conn)
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
    if args.json:
        print(to_json([r.as_dict() for r in results]))
    else:
        print(
            render(
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
        )
    return 1 if failed else 0


def cmd_info(args) -> int:
    views = catalog.resolve_views(args.views)
    with connection(autocommit=True) as conn:
        require_schema(conn)
        infos = [view_info(conn, v) for v in views]
    if args.json:
        print(to_json(infos))
    else:
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


def _since(text: str):
    """``2h`` / ``30min`` / ``7d`` ago, or an ISO date or time (local time when naive)."""
    from datetime import datetime, timedelta

    from efir_pipeline.core.db.health import parse_seconds

    try:
        return datetime.now().astimezone() - timedelta(seconds=parse_seconds(text))
    except EfirError:
        pass
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (2h, 7d) nor a date or time (2026-01-15T10:00)"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def cmd_history(args) -> int:
    from efir_pipeline.core.db.health import human_duration, refresh_history

    views = catalog.resolve_views(args.views) if args.views else None  # names checked first
    with connection(autocommit=True) as conn:
        require_schema(conn)
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


def cmd_demo_data(args) -> int:
    from efir_pipeline.cli import demo_data

    orgs, versions = demo_data.SCALES[args.scale]
    orgs = args.orgs or orgs
    versions = args.versions_per_org or versions
    with connection() as conn:
        require_schema(conn, "efir_budget.budget_versions")
        summary = demo_data.load_demo_data(
            conn,
            orgs=orgs,
            versions_per_org=versions,
            seed=args.seed,
            replace=args.replace,
            progress=_progress,
        )
    print(file=sys.stderr)
    print(
        f"loaded {summary.organizations} organization(s), {summary.versions} budget versions, "
        f"{sum(summary.rows.values()):,} rows in {summary.seconds:.1f}s"
    )
    print(render([{"table": t, "rows": n} for t, n in summary.rows.items()]))
    print("refresh the views to see it: efir-pipeline refresh")
    return 0


def _progress(step: str, index: int, count: int) -> None:
    width = 30
    done = int(width * index / count)
    print(
        f"\r[{'#' * done}{'.' * (width - done)}] {index}/{count} {step:<30}",
        end="",
        file=sys.stderr,
        flush=True,
    )


def cmd_kpis(args) -> int:
    with connection(autocommit=True) as conn:
        require_schema(conn)
        cur = conn.cursor(row_factory=_dict_row())
        where = "WHERE fiscal_year = %(fy)s" if args.fiscal_year is not None else ""
        rows = cur.execute(
            f"""SELECT * FROM efir_budget.mv_kpi_dashboard {where}
                ORDER BY fiscal_year, version_name LIMIT %(limit)s""",
            {"fy": args.fiscal_year, "limit": args.limit},
        ).fetchall()
    if args.json:
        print(to_json(rows))
    else:
        print(render(rows, KPI_COLUMNS))
    return 0


def _dict_row():
    from psycopg.rows import dict_row

    return dict_row


def cmd_prepare(args) -> int:
    """The first half of the main job: a ready database with fresh views."""
    from efir_pipeline.cli import demo_data

    url = database_url()
    print("applying migrations ...", file=sys.stderr)
    migrate.upgrade(url)
    with connection() as conn:
        empty = not demo_data.has_data(conn)
    if empty:
        print("loading EFIR demo data ...", file=sys.stderr)
        with connection() as conn:
            demo_data.load_demo_data(conn, progress=_progress)
        print(file=sys.stderr)
    failed = []
    for view in catalog.resolve_views():
        result = refresh_view(view, trigger="prepare")
        print(
            f"{view.name}: {result.outcome} in {result.duration_seconds:.3f}s, {result.row_count} rows",
            file=sys.stderr,
        )
        if not result.ok:
            failed.append(f"{view.name} ({result.error})")
    if failed:
        raise EfirError("refresh failed: " + "; ".join(failed))
    return cmd_kpis(argparse.Namespace(fiscal_year=None, limit=50, json=False))


def cmd_start(args) -> int:
    """The main job: a ready database, then the Dagster UI on it until Ctrl-C.

    With DATABASE_URL unset, this process holds the embedded server for as long as
    Dagster runs and exports its URL, so every Dagster process uses that one server.
    """
    from efir_pipeline.cli import dev_server as dagster_dev
    from efir_pipeline.core.db import embedded

    dagster_dev.check_port_free(args.host, args.port)
    dagster_dev.check_home_free()
    try:
        url = database_url()
        if not args.skip_prepare:
            cmd_prepare(args)
        return dagster_dev.run(args.host, args.port, database_url=url)
    finally:
        embedded.stop()  # no-op with DATABASE_URL; else the server stops if no one else uses it


def cmd_docs(args) -> int:
    """Generated reference docs: from the catalog and a database at the head revision."""
    from pathlib import Path

    from efir_pipeline.cli import docgen
    from efir_pipeline.core.errors import MigrationsNotApplied

    url = database_url()
    applied, head = migrate.current_revision(url), migrate.head_revision(url)
    if applied != head:
        raise MigrationsNotApplied(
            f"docs are generated from a database at the latest migration ({head}); this one "
            f"is at {applied or 'none'}: run `efir-pipeline db upgrade` first"
        )
    with connection(autocommit=True) as conn:
        text = docgen.render(conn, head)
    path = Path(args.output) if args.output else docgen.REFERENCE_PATH
    current = path.read_text() if path.exists() else ""
    if args.check:
        if current == text:
            print(f"{path} is up to date")
            return 0
        print(docgen.diff(current, text, path), end="")
        print(f"efir-pipeline: {path} is stale: run `efir-pipeline docs`", file=sys.stderr)
        return 1
    if current != text:
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(f"{path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
