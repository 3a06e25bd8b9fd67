"""Fixtures of the Dagster tests: the resource and connections on the test database.

Modules that need rows a reset would remove (``test_assets``, ``test_definitions``)
point ``db_url`` at the shared random dataset instead (``dataset_url``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from efir_pipeline.defs.resources import PostgresResource


@pytest.fixture
def postgres(db_url: str) -> PostgresResource:
    """The resource pointed at the test database; retries without waiting."""
    return PostgresResource(database_url=db_url, retry_wait_seconds=0)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def child_env(db_url: str) -> dict[str, str]:
    """Environment of a Dagster subprocess working on the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url
    env.pop("DAGSTER_HOME", None)
    return env
