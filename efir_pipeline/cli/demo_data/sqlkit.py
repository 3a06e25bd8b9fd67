"""SQL helpers of the loader: the seeded ``pg_temp`` functions, temporary objects, literals.

The seed lives in the SQL functions, not in Python: every statement of the load calls
``pg_temp.demo_unit`` / ``demo_id`` with a key naming what a figure is for, so a row's
values depend on (seed, key) only, never on the order or the plan that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA

# (signature, volatility, body); ``{prefix}`` is the seed as a SQL string literal.
# timestamptz + interval is STABLE, and a function declared less volatile than its body
# is not inlined by the planner (14 us a call instead of 0.3).
_FUNCTIONS: tuple[tuple[str, str, str], ...] = (
    # uniform in [0, 1)
    (
        "demo_unit(key text) RETURNS double precision",
        "IMMUTABLE",
        "SELECT (hashtextextended({prefix} || key, 0) & 4503599627370495)::double precision"
        " / 4503599627370496",
    ),
    # 1 +/- spread
    (
        "demo_jitter(key text, spread numeric) RETURNS numeric",
        "IMMUTABLE",
        "SELECT 1 + spread * (2 * pg_temp.demo_unit(key) - 1)::numeric",
    ),
    # every id of the load: the same seed and key give the same id in any database
    ("demo_id(key text) RETURNS uuid", "IMMUTABLE", "SELECT md5({prefix} || key)::uuid"),
    # A row is created within two hours of its version, then edited during the version's
    # editing window (creation to last status change).
    (
        "demo_created(base timestamptz, key text) RETURNS timestamptz",
        "STABLE",
        "SELECT base + pg_temp.demo_unit(key || ':created') * interval '2 hours'",
    ),
    (
        "demo_updated(base timestamptz, edit_window interval, key text) RETURNS timestamptz",
        "STABLE",
        "SELECT pg_temp.demo_created(base, key)"
        " + pg_temp.demo_unit(key || ':updated') * edit_window",
    ),
)
_TEMP_FUNCTIONS = (
    "demo_updated(timestamptz, interval, text)",
    "demo_created(timestamptz, text)",
    "demo_id(text)",
    "demo_jitter(text, numeric)",
    "demo_unit(text)",
)
_TEMP_TABLES = ("_demo_curriculum", "_demo_versions", "_demo_old_versions", "_demo_orgs")


def create_functions(cur: psycopg.Cursor, seed: int) -> None:
    """The seeded pseudo-random helpers: pure functions of (seed, key)."""
    prefix = f"'{int(seed)}:'"
    for signature, volatility, body in _FUNCTIONS:
        cur.execute(
            f"CREATE FUNCTION pg_temp.{signature} LANGUAGE sql {volatility} PARALLEL SAFE"
            f" AS $$ {body.format(prefix=prefix)} $$"
        )


def cleanup(cur: psycopg.Cursor) -> None:
    """Drop this load's temporary objects (also left-overs of an earlier call in the session)."""
    cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{t}" for t in _TEMP_TABLES))
    for function in _TEMP_FUNCTIONS:
        cur.execute(f"DROP FUNCTION IF EXISTS pg_temp.{function}")


def table(name: str) -> sql.Composable:
    return sql.Identifier(SCHEMA, name)


def values(rows: Iterable[Sequence], casts: Sequence[str] | None = None) -> sql.Composable:
    """A ``(VALUES ...)`` list of literals; ``casts`` types the first row's columns."""
    rendered = []
    for i, row in enumerate(rows):
        cells = [literal(value) for value in row]
        if i == 0 and casts:
            cells = [
                sql.SQL("{}::{}").format(cell, sql.SQL(cast))
                for cell, cast in zip(cells, casts, strict=True)
            ]
        rendered.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
    return sql.SQL("(VALUES {})").format(sql.SQL(", ").join(rendered))


def literal(value) -> sql.Composable:
    if isinstance(value, float):  # numeric, not float8: money stays exact
        return sql.SQL(repr(value))
    return sql.Literal(value)


def literals(items: Iterable) -> sql.Composable:
    """Comma-separated literals, for ``IN (...)``."""
    return sql.SQL(", ").join(map(literal, items))
