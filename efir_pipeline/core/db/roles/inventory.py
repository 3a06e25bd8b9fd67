"""What schema efir_budget holds, read from the database and sorted by the design."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA
from efir_pipeline.core.db.roles.design import (
    CATEGORY_ORDER,
    PIPELINE_FUNCTIONS,
    PIPELINE_OWNED,
    category_of,
    intended_privileges,
)
from efir_pipeline.core.errors import MigrationsNotApplied


@dataclass(frozen=True)
class Relation:
    name: str
    relkind: str  # r table, p partitioned table, v view, m materialized view, f foreign table
    owner: str
    category: str | None
    """One of the design's categories; None: the app's, left alone."""

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(SCHEMA, self.name)

    @property
    def sql_kind(self) -> str:
        return {"v": "VIEW", "m": "MATERIALIZED VIEW"}.get(self.relkind, "TABLE")


@dataclass(frozen=True)
class Function:
    name: str
    signature: str
    """``regprocedure`` text, e.g. ``efir_budget.capture_change()`` (PostgreSQL quotes it)."""
    owner: str
    managed: bool


@dataclass(frozen=True)
class Inventory:
    """What schema efir_budget holds, classified."""

    relations: tuple[Relation, ...]
    functions: tuple[Function, ...]
    dashboard_functions: frozenset[str]
    """Signatures of the functions the dashboard-readable views call."""

    def by_category(self, *categories: str) -> list[Relation]:
        return [r for r in self.relations if r.category in categories]

    @property
    def managed(self) -> list[Relation]:
        """The classified relations, grouped by category (sources first), then by name."""
        return ordered(self.relations)

    @property
    def left_alone(self) -> list[Relation]:
        return [r for r in self.relations if r.category is None]


def ordered(relations: Iterable[Relation]) -> list[Relation]:
    return sorted(
        (r for r in relations if r.category),
        key=lambda r: (CATEGORY_ORDER.index(r.category), r.name),
    )


_RELATIONS = """
SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner)
FROM pg_class c
WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname
"""

_FUNCTIONS = """
SELECT p.proname, p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
FROM pg_proc p
WHERE p.pronamespace = %s::regnamespace
ORDER BY p.proname, 2
"""

# Functions a view's rewrite rule calls (pg_depend), e.g. kpi_freshness -> view_freshness().
# A view's functions run with the *reader's* EXECUTE right, unlike its tables.
_VIEW_FUNCTIONS = """
SELECT DISTINCT d.refobjid::regprocedure::text
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_proc'::regclass
JOIN pg_proc p ON p.oid = d.refobjid
WHERE r.ev_class = ANY(%s::regclass[]) AND p.pronamespace = %s::regnamespace
"""


def inspect(conn: psycopg.Connection) -> Inventory:
    """Read and classify schema efir_budget; fail with the command to run if it is missing."""
    if conn.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone()[0] is None:
        raise MigrationsNotApplied(
            f"the database {conn.info.dbname} has no schema {SCHEMA}: "
            "run `efir-pipeline db upgrade` first"
        )
    relations = tuple(
        Relation(name, kind, owner, category_of(name, kind))
        for name, kind, owner in conn.execute(_RELATIONS, (SCHEMA,)).fetchall()
    )
    functions = tuple(
        Function(name, signature, owner, name in PIPELINE_FUNCTIONS)
        for name, signature, owner in conn.execute(_FUNCTIONS, (SCHEMA,)).fetchall()
    )
    readable = [
        f"{SCHEMA}.{r.name}"
        for r in relations
        if r.category in PIPELINE_OWNED
        and "SELECT" in intended_privileges(r.name, r.category)["dashboard"]
    ]
    called = conn.execute(_VIEW_FUNCTIONS, (readable, SCHEMA)).fetchall() if readable else []
    return Inventory(relations, functions, frozenset(s for (s,) in called))
