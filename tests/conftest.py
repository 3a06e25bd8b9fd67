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

from efir_pipeline.core import settings
from efir_pipeline.core.db import embedded, migrate
from efir_pipeline.core.settings import validate_url
from tests.support.factories import reset_data
from tests.support.random_data import generate
from tests.support.roles import RoleCleanup


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings anew, so ``monkeypatch.setenv`` reaches the code
    (a process reads them once: ``efir_pipeline.core.settings.current``)."""
    settings.current.cache_clear()
    yield
    settings.current.cache_clear()


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


@pytest.fixture(scope="module")
def role_cleanup(server_url: str) -> Iterator[RoleCleanup]:
    """Register (database url, roles) to drop at the end of the module."""
    cleanup = RoleCleanup(server_url)
    yield cleanup
    cleanup.drop()


@pytest.fixture(scope="session")
def dataset_url(make_database) -> str:
    """A migrated scratch database holding a small random budget dataset, never reset
    (for tests that only read, or that need rows the ``conn`` reset would remove)."""
    url = make_database()
    with psycopg.connect(url, autocommit=True) as c:
        generate(c, seed=11, n_orgs=2)
    return url
