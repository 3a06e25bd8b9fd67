"""Fixtures of the Dagster tests: a scratch database of their own, with data.

``db_url`` is overridden here (package scope) so these tests never share rows with
the view tests, which truncate the session database between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from efir_pipeline.resources import PostgresResource
from tests.db.random_data import generate


@pytest.fixture(scope="package")
def db_url(make_database) -> str:
    """A migrated scratch database holding a small random budget dataset."""
    url = make_database()
    with psycopg.connect(url, autocommit=True) as c:
        generate(c, seed=11, n_orgs=2)
    return url


@pytest.fixture
def postgres(db_url: str) -> PostgresResource:
    """The resource pointed at the scratch database; retries without waiting."""
    return PostgresResource(database_url=db_url, retry_wait_seconds=0)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def child_env(db_url: str) -> dict[str, str]:
    """Environment of a Dagster subprocess working on the scratch database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url
    env.pop("DAGSTER_HOME", None)
    return env
