"""``efir-pipeline db adopt``: install the pipeline on the budget app's own database.

The app's database already holds the source tables (revision ``0001_source_schema``
builds them only for new databases) and two materialized views of its own under the
names ours take. Adopting checks first, changes nothing while anything the views need
is missing, then records the source schema as present and applies every later
revision; those replace the app's two views (kept for a downgrade) and leave every
other object of the app, its ``alembic_version`` included, as it is. Adopting an
adopted database does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from efir_pipeline.core.db import migrate, source_schema
from efir_pipeline.core.db.connection import connect
from efir_pipeline.core.db.urls import describe_target
from efir_pipeline.core.errors import MigrationsNotApplied, SchemaMismatch


@dataclass
class Adoption:
    """What ``adopt`` found and did."""

    before: str | None
    after: str | None
    applied: bool
    replaced: list[str] = field(default_factory=list)
    """The app's views this adoption replaced (kept in efir_budget.replaced_app_views)."""
    event_triggers: bool = False
    """Whether REFRESHes run outside the pipeline are recorded (needs a superuser)."""


def adopt(url: str) -> Adoption:
    """Check, then stamp and upgrade; raise before any change when the database won't do."""
    with connect(url, autocommit=True) as conn:
        before = migrate.applied(conn)
        if before == migrate.head():
            return Adoption(before, before, applied=False, **_facts(conn))
        if before is None:
            _check_source_schema(conn)
    if before is None:
        migrate.stamp(url, migrate.SOURCE_SCHEMA_REVISION)
    migrate.upgrade(url)
    with connect(url, autocommit=True) as conn:
        return Adoption(before, migrate.applied(conn), applied=True, **_facts(conn))


def _check_source_schema(conn) -> None:
    where = describe_target(conn.info.dsn)
    if not source_schema.present_tables(conn):
        raise MigrationsNotApplied(
            f"the database {where} has none of the budget app's tables: nothing to adopt; "
            "for a new database run `efir-pipeline db upgrade`"
        )
    problems = source_schema.check(conn)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise SchemaMismatch(
            f"the database {where} lacks what the views need ({len(problems)} problem(s)), "
            f"nothing was changed: {listed}"
        )


def _facts(conn) -> dict:
    replaced = []
    if conn.execute("SELECT to_regclass('efir_budget.replaced_app_views')").fetchone()[0]:
        replaced = [
            name
            for (name,) in conn.execute(
                "SELECT view_name FROM efir_budget.replaced_app_views ORDER BY 1"
            ).fetchall()
        ]
    triggers = conn.execute(
        "SELECT count(*) = 2 FROM pg_event_trigger WHERE evtname LIKE 'efir_outside_refresh_%%'"
    ).fetchone()[0]
    return {"replaced": replaced, "event_triggers": bool(triggers)}
