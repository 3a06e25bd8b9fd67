"""Fixtures of the view tests.

``conn`` overrides the shared one only to reset the data correctly: the shared
``tests.conftest.reset_data`` passes parameters to a query holding ``format('%I.%I')``,
which psycopg rejects ("only '%s', '%b', '%t' are allowed as placeholders"). Same
behaviour otherwise: an autocommit connection to a database holding only the
reference rows, with the materialized views emptied.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import REFERENCE_TABLES


def reset_data(c: psycopg.Connection) -> None:
    tables = c.execute(
        """SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables
           WHERE schemaname = 'efir_budget' AND NOT (tablename = ANY(%s))""",
        (list(REFERENCE_TABLES),),
    ).fetchall()
    if tables:
        c.execute("TRUNCATE " + ", ".join(t for (t,) in tables) + " RESTART IDENTITY CASCADE")
    for (mv,) in c.execute(
        "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews"
        " WHERE schemaname = 'efir_budget'"
    ).fetchall():
        c.execute(f"REFRESH MATERIALIZED VIEW {mv}")


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        reset_data(c)
        yield c
