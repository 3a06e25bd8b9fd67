"""Which managed materialized view reads which, as PostgreSQL itself records it.

A view's query is stored as a rewrite rule (``pg_rewrite``), and ``pg_depend`` links
that rule to every relation the query reads. Walking those links from each
materialized view of the ``efir_budget`` schema, through plain views (``v_*`` and any
other) and stopping at the first materialized view met on each path, gives the
managed views it reads directly. ``catalog.ManagedView.depends_on`` must say the
same (tests/db/test_dependencies.py), so the refresh order and the Dagster graph
cannot drift from the database.
"""

from __future__ import annotations

import psycopg

from efir_pipeline.core.catalog import SCHEMA, VIEWS

# (root, relation reached): start at each materialized view; follow its rule and, from
# there on, only the rules of plain views; keep the materialized views reached.
_DEPENDENCIES = """
WITH RECURSIVE walk(root, oid) AS (
    SELECT c.oid, c.oid
    FROM pg_class c
    WHERE c.relkind = 'm' AND c.relnamespace = %(schema)s::regnamespace
  UNION
    SELECT w.root, d.refobjid
    FROM walk w
    JOIN pg_class wc ON wc.oid = w.oid
    JOIN pg_rewrite r ON r.ev_class = w.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> w.oid
    WHERE w.oid = w.root OR wc.relkind = 'v'
)
SELECT root.relname::text, reached.relname::text, reached.relkind = 'm'
       AND reached.relnamespace = %(schema)s::regnamespace AND reached.oid <> root.oid
FROM walk w
JOIN pg_class root ON root.oid = w.root
JOIN pg_class reached ON reached.oid = w.oid
"""


def view_dependencies(conn: psycopg.Connection, schema: str = SCHEMA) -> dict[str, set[str]]:
    """For every materialized view of ``schema``: the materialized views of ``schema``
    its query reads, directly or through plain views (not through other materialized
    views: those are their own refresh step). Every materialized view is a key, with an
    empty set when it reads none."""
    out: dict[str, set[str]] = {}
    for root, reached, is_dependency in conn.execute(_DEPENDENCIES, {"schema": schema}):
        deps = out.setdefault(root, set())
        if is_dependency:
            deps.add(reached)
    return out


def dependency_drift(conn: psycopg.Connection) -> list[str]:
    """Where the catalog's ``depends_on`` differs from PostgreSQL's record (empty: none)."""
    actual = view_dependencies(conn)
    problems = []
    for view in VIEWS:
        declared, found = set(view.depends_on), actual.get(view.name)
        if found is None:
            problems.append(f"{view.name}: no such materialized view in {SCHEMA}")
        elif declared != found:
            problems.append(
                f"{view.name}: catalog depends_on {sorted(declared)}, "
                f"PostgreSQL records {sorted(found)}"
            )
    for name in sorted(set(actual) - {v.name for v in VIEWS}):
        problems.append(f"{name}: materialized view not in the catalog")
    return problems
