"""One way to reach the database, with errors a person can act on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg

from efir_pipeline.core.db import embedded
from efir_pipeline.core.errors import DatabaseUnavailable, MigrationsNotApplied
from efir_pipeline.core.settings import describe_target, validate_url

APPLICATION_NAME = "efir-pipeline"
CONNECT_TIMEOUT_S = 5


@cache
def database_url() -> str:
    """DATABASE_URL when set (validated), else the embedded server's URL."""
    configured = os.environ.get("DATABASE_URL", "").strip()
    if configured:
        return validate_url(configured)
    return embedded.start()


def connect(url: str | None = None, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    url = url or database_url()
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        # libpq's message spans lines ("connection refused" / "Is the server running..."):
        # keep it all, on one line.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {describe_target(url)}: {reason}"
        ) from exc


@contextmanager
def connection(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A connection that commits when the block succeeds and rolls back when it raises."""
    conn = connect(url, autocommit=autocommit)
    try:
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not conn.closed and not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


def require_schema(conn: psycopg.Connection, relation: str = "efir_budget.mv_refresh_log") -> None:
    """Fail with the command to run when the migrations have not been applied."""
    found = conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()[0]
    if found is None:
        raise MigrationsNotApplied(
            f"the database {conn.info.dbname} on {conn.info.host}:{conn.info.port} has no {relation}: "
            "run `efir-pipeline db upgrade` first"
        )
