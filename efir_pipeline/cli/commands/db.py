"""``efir-pipeline db ...``: the schema (alembic) and the roles."""

from __future__ import annotations

import sys

from efir_pipeline.cli.output import render
from efir_pipeline.core import settings
from efir_pipeline.core.db import adopt, migrate, roles
from efir_pipeline.core.db.connection import connection, database_url


def register(commands) -> None:
    db = commands.add_parser("db", help="schema migrations (alembic) and roles")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", help="apply migrations (default: all)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=upgrade)
    down = actions.add_parser("downgrade", help="go back to REVISION (e.g. -1, base)")
    down.add_argument("revision")
    down.set_defaults(handler=downgrade)
    stamp = actions.add_parser(
        "stamp", help="mark REVISION as applied without running it (adopting existing tables)"
    )
    stamp.add_argument("revision")
    stamp.set_defaults(handler=stamp_revision)
    adopt_db = actions.add_parser(
        "adopt",
        help="install on the budget app's own database: check what the views need, record "
        "the app's tables as present, apply the rest (its two old views are replaced and kept "
        "for a downgrade); a no-op the second time",
    )
    adopt_db.set_defaults(handler=adopt_database)
    current = actions.add_parser("current", help="show the applied and the latest revision")
    current.set_defaults(handler=show_current)
    role = actions.add_parser(
        "roles",
        help="create the pipeline, dashboard, app and capture roles and set least privileges "
        "(idempotent; run as the migration owner after every upgrade)",
    )
    role.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    role.add_argument("--pipeline-role", help="default: EFIR_ROLE_PIPELINE or efir_pipeline")
    role.add_argument("--dashboard-role", help="default: EFIR_ROLE_DASHBOARD or efir_dashboard")
    role.add_argument("--app-role", help="default: EFIR_ROLE_APP or efir_app")
    role.add_argument("--capture-role", help="default: EFIR_ROLE_CAPTURE or efir_capture")
    role.add_argument(
        "--nologin",
        action="store_true",
        help="group roles (NOLOGIN) to GRANT to login users, instead of LOGIN roles",
    )
    role.set_defaults(handler=set_roles)


def upgrade(args) -> int:
    migrate.upgrade(database_url(), args.revision)
    print(f"database at revision {migrate.current_revision(database_url())}")
    return 0


def adopt_database(args) -> int:
    done = adopt.adopt(database_url())
    if not done.applied:
        print(f"already adopted: the database is at revision {done.after}; nothing to do")
        return 0
    print(f"database at revision {done.after} (was {done.before or 'the budget app alone'})")
    for view in done.replaced:
        print(f"replaced the budget app's {view} (kept: db downgrade base restores it)")
    if not done.event_triggers:
        print(
            "note: REFRESHes run outside efir-pipeline are not recorded: creating the event "
            "triggers needs a superuser (see docs/adopting.md)",
            file=sys.stderr,
        )
    print("next: efir-pipeline db roles, then efir-pipeline refresh")
    return 0


def downgrade(args) -> int:
    migrate.downgrade(database_url(), args.revision)
    print(f"database at revision {migrate.current_revision(database_url()) or 'base'}")
    return 0


def stamp_revision(args) -> int:
    migrate.stamp(database_url(), args.revision)
    print(f"database stamped at {migrate.current_revision(database_url())}")
    return 0


def show_current(args) -> int:
    print(
        f"applied: {migrate.current_revision(database_url()) or 'none'}\nlatest:  {migrate.head()}"
    )
    return 0


def set_roles(args) -> int:
    names = roles.RoleNames.from_settings(
        settings.current(),
        pipeline=args.pipeline_role,
        dashboard=args.dashboard_role,
        app=args.app_role,
        capture=args.capture_role,
    )
    script, text = roles.apply(database_url(), names, login=not args.nologin, dry_run=args.dry_run)
    if args.dry_run:
        print(text)
        return 0
    for note in script.notes:
        print(f"note: {note}", file=sys.stderr)
    with connection(autocommit=True) as conn:
        matrix = roles.privilege_matrix(conn, names)
    print(render(matrix, ("object", "kind", *roles.KINDS)))
    created = ", ".join(script.created) or "none"
    print(
        f"{len(script.statements)} statements applied; roles created: {created}. "
        "Set passwords with ALTER ROLE ... PASSWORD (see docs/deploy.md).",
        file=sys.stderr,
    )
    return 0
