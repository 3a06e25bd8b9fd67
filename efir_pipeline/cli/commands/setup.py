"""``efir-pipeline demo-data | prepare | start | docs``: getting a machine ready to look at."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from efir_pipeline.cli import demo_data, docgen
from efir_pipeline.cli.arguments import bounded_int
from efir_pipeline.cli.commands.views import show_kpis
from efir_pipeline.cli.output import render
from efir_pipeline.core import catalog
from efir_pipeline.core.db import embedded, migrate
from efir_pipeline.core.db.connection import connection, database_url
from efir_pipeline.core.db.migrate import require_current
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.errors import EfirError


def register(commands) -> None:
    demo = commands.add_parser("demo-data", help="load realistic demo data")
    demo.add_argument("--scale", choices=["efir", "network"], default="efir")
    demo.add_argument(
        "--orgs", type=bounded_int(1, demo_data.MAX_ORGS), help="schools (overrides --scale)"
    )
    demo.add_argument(
        "--versions-per-org",
        type=bounded_int(1, demo_data.MAX_VERSIONS_PER_ORG),
        help="budget versions per school",
    )
    demo.add_argument(
        "--seed", type=bounded_int(0, 2**31 - 1), default=42, help="same seed, same data (42)"
    )
    demo.add_argument(
        "--replace", action="store_true", help="replace the demo schools if they already exist"
    )
    demo.set_defaults(handler=load_demo_data)

    prepare = commands.add_parser(
        "prepare", help="migrate, load demo data if the database is empty, refresh all views"
    )
    prepare.set_defaults(handler=prepare_database)

    start = commands.add_parser(
        "start", help="prepare (as above), then run the Dagster UI (dagster dev) until Ctrl-C"
    )
    start.add_argument("--host", default="127.0.0.1", help="UI host (default: 127.0.0.1)")
    start.add_argument(
        "--port", type=bounded_int(1, 65535), default=3000, help="UI port (default: 3000)"
    )
    start.add_argument(
        "--skip-prepare",
        action="store_true",
        help="start the UI at once: no migrations, demo data or first refresh",
    )
    start.set_defaults(handler=start_ui)

    docs = commands.add_parser(
        "docs",
        help="render the generated docs (view reference, settings) from the catalog, the "
        "settings and the COMMENTs of the database (which must be at the latest migration)",
    )
    docs.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file is stale"
    )
    docs.add_argument(
        "--root",
        type=Path,
        default=docgen.PROJECT_ROOT,
        help="the folder holding docs/ (default: this checkout)",
    )
    docs.set_defaults(handler=render_docs)


def load_demo_data(args) -> int:
    orgs, versions = demo_data.SCALES[args.scale]
    with connection() as conn:
        require_current(conn)
        summary = demo_data.load_demo_data(
            conn,
            orgs=args.orgs or orgs,
            versions_per_org=args.versions_per_org or versions,
            seed=args.seed,
            replace=args.replace,
            progress=progress,
        )
    print(file=sys.stderr)
    print(
        f"loaded {summary.organizations} organization(s), {summary.versions} budget versions, "
        f"{sum(summary.rows.values()):,} rows in {summary.seconds:.1f}s"
    )
    print(render([{"table": t, "rows": n} for t, n in summary.rows.items()]))
    print("refresh the views to see it: efir-pipeline refresh")
    return 0


def progress(step: str, index: int, count: int) -> None:
    width = 30
    done = int(width * index / count)
    print(
        f"\r[{'#' * done}{'.' * (width - done)}] {index}/{count} {step:<30}",
        end="",
        file=sys.stderr,
        flush=True,
    )


def prepare_database(args) -> int:
    """The first half of the main job: a ready database with fresh views."""
    url = database_url()
    print("applying migrations ...", file=sys.stderr)
    migrate.upgrade(url)
    with connection() as conn:
        empty = not demo_data.has_data(conn)
    if empty:
        print("loading EFIR demo data ...", file=sys.stderr)
        with connection() as conn:
            demo_data.load_demo_data(conn, progress=progress)
        print(file=sys.stderr)
    failed = []
    for view in catalog.resolve_views():
        result = refresh_view(view, trigger="prepare")
        print(
            f"{view.name}: {result.outcome} in {result.duration_seconds:.3f}s, "
            f"{result.row_count} rows",
            file=sys.stderr,
        )
        if not result.ok:
            failed.append(f"{view.name} ({result.error})")
    if failed:
        raise EfirError("refresh failed: " + "; ".join(failed))
    return show_kpis(argparse.Namespace(fiscal_year=None, limit=50, json=False))


def start_ui(args) -> int:
    """The main job: a ready database, then the Dagster UI on it until Ctrl-C.

    With DATABASE_URL unset, this process holds the embedded server for as long as
    Dagster runs and exports its URL, so every Dagster process uses that one server.
    """
    from efir_pipeline.cli import dev_server  # imports Dagster: only when starting it

    dev_server.check_port_free(args.host, args.port)
    dev_server.check_home_free()
    try:
        url = database_url()
        if not args.skip_prepare:
            prepare_database(args)
        return dev_server.run(args.host, args.port, database_url=url)
    finally:
        embedded.stop()  # no-op with DATABASE_URL; else the server stops if no one else uses it


def render_docs(args) -> int:
    """Generated docs, from the catalog, the settings and a database at the head revision."""
    with connection(autocommit=True) as conn:
        require_current(conn)
        files = docgen.render_all(conn, args.root)
    stale = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            print(f"{_shown(path, args.root)} is up to date")
        elif args.check:
            print(docgen.diff(current, text, path), end="")
            stale.append(_shown(path, args.root))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {_shown(path, args.root)}")
    if stale:
        print(
            f"efir-pipeline: stale: {', '.join(stale)}: run `efir-pipeline docs`", file=sys.stderr
        )
        return 1
    return 0


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root))
