"""What each role can do on every managed object: as PostgreSQL answers it, and as the
design says. ``db roles`` prints the first; the tests hold it equal to the second."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from efir_pipeline.core.catalog import SCHEMA
from efir_pipeline.core.db.roles.design import (
    TABLE_PRIVILEGES,
    function_execute,
    function_owner,
    intended_privileges,
)
from efir_pipeline.core.db.roles.inventory import Inventory, inspect
from efir_pipeline.core.db.roles.names import KINDS, RoleNames


def privilege_matrix(conn: psycopg.Connection, names: RoleNames) -> list[dict[str, str]]:
    """What each role *can* do on every managed object, as PostgreSQL answers it.

    ``owner`` for ownership (REFRESH, ALTER, DROP), else the table privileges held
    (``EXECUTE`` for functions), ``-`` for none. Used by the tests and printed by
    ``db roles``; :func:`intended_matrix` is the design it must equal.
    """
    inventory = inspect(conn)
    rows = []
    for r in inventory.managed:
        row = {"object": r.name, "kind": r.category}
        for kind in KINDS:
            role = names[kind]
            owner, *held = conn.execute(
                "SELECT pg_has_role(%s, c.relowner, 'USAGE'), "
                + ", ".join(f"has_table_privilege(%s, c.oid, '{p}')" for p in TABLE_PRIVILEGES)
                + " FROM pg_class c WHERE c.oid = %s::regclass",
                (role, *([role] * len(TABLE_PRIVILEGES)), f"{SCHEMA}.{r.name}"),
            ).fetchone()
            row[kind] = (
                "owner"
                if owner
                else _cell(p for p, h in zip(TABLE_PRIVILEGES, held, strict=True) if h)
            )
        rows.append(row)
    for f in inventory.functions:
        if not f.managed:
            continue
        row = {"object": f"{f.name}()", "kind": "function"}
        for kind in KINDS:
            owner, execute = conn.execute(
                "SELECT pg_has_role(%s, p.proowner, 'USAGE'), has_function_privilege(%s, p.oid, 'EXECUTE') "
                "FROM pg_proc p WHERE p.oid = %s::regprocedure",
                (names[kind], names[kind], f.signature),
            ).fetchone()
            row[kind] = "owner" if owner else ("EXECUTE" if execute else "-")
        rows.append(row)
    schema_row = {"object": SCHEMA, "kind": "schema"}
    for kind in KINDS:
        usage, create = conn.execute(
            "SELECT has_schema_privilege(%s, %s, 'USAGE'), has_schema_privilege(%s, %s, 'CREATE')",
            (names[kind], SCHEMA, names[kind], SCHEMA),
        ).fetchone()
        schema_row[kind] = _cell(p for p, h in (("USAGE", usage), ("CREATE", create)) if h)
    rows.append(schema_row)
    return rows


def intended_matrix(inventory: Inventory) -> list[dict[str, str]]:
    """The design, over the objects of ``inventory``, in :func:`privilege_matrix`'s shape."""
    rows = []
    for r in inventory.managed:
        grants = intended_privileges(r.name, r.category)
        row = {"object": r.name, "kind": r.category}
        row.update({k: "owner" if v == ("OWNER",) else _cell(v) for k, v in grants.items()})
        rows.append(row)
    for f in inventory.functions:
        if f.managed:
            allowed = function_execute(
                f.name, called_by_dashboard_view=f.signature in inventory.dashboard_functions
            )
            owner = function_owner(f.name)
            row = {"object": f"{f.name}()", "kind": "function"}
            row.update(
                {k: "owner" if k == owner else ("EXECUTE" if allowed[k] else "-") for k in KINDS}
            )
            rows.append(row)
    rows.append({"object": SCHEMA, "kind": "schema", **dict.fromkeys(KINDS, "USAGE")})
    return rows


def _cell(privileges: Iterable[str]) -> str:
    return " ".join(privileges) or "-"
