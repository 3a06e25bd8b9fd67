"""Real PostgreSQL for every test: DATABASE_URL's server when set, else the embedded one.

Each test session works in scratch databases of its own (created here, dropped at
the end), so parallel runs and the developer's data never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from efir_pipeline import catalog
from efir_pipeline.db import embedded, migrate
from efir_pipeline.db.settings import validate_url

# Tables the migrations fill with reference rows; everything else is test data.
REFERENCE_TABLES = (
    "academic_cycles",
    "academic_levels",
    "nationality_types",
    "teacher_categories",
    "subjects",
)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a maintenance database on the server the tests may create databases on."""
    configured = os.environ.get("DATABASE_URL", "").strip()
    if configured:
        yield validate_url(configured)
        return
    yield embedded.start(database="postgres")
    embedded.stop()


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator[Callable[..., str]]:
    """Factory: a new empty scratch database (optionally migrated); all dropped at the end."""
    created: list[str] = []

    def make(*, migrated: bool = True) -> str:
        name = f"efir_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        url = _with_database(server_url, name)
        if migrated:
            migrate.upgrade(url)
        return url

    yield make
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def db_url(make_database) -> str:
    """One migrated scratch database shared by the session's tests."""
    return make_database()


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a database holding only the reference rows."""
    with psycopg.connect(db_url, autocommit=True) as c:
        reset_data(c)
        yield c


def reset_data(c: psycopg.Connection) -> None:
    """Remove all non-reference rows and empty the views, so each test starts alike."""
    tables = c.execute(
        """SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables
           WHERE schemaname = 'efir_budget' AND NOT (tablename = ANY(%s))""",
        (list(REFERENCE_TABLES),),
    ).fetchall()
    if tables:
        c.execute("TRUNCATE " + ", ".join(t for (t,) in tables) + " RESTART IDENTITY CASCADE")
    # Change capture (0004) logs that TRUNCATE too: start every test with an empty log.
    if c.execute("SELECT to_regclass('efir_budget.change_log')").fetchone()[0] is not None:
        c.execute("TRUNCATE efir_budget.change_log RESTART IDENTITY")
    # Dependencies first: a view reading another view must see it already emptied.
    for view in catalog.resolve_views():
        c.execute(f"REFRESH MATERIALIZED VIEW {view.qualified_name}")
