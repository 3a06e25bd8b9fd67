"""One way to reach the database, with errors a person can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg
from psycopg.conninfo import conninfo_to_dict

from efir_pipeline.core import settings
from efir_pipeline.core.db import embedded
from efir_pipeline.core.db.urls import as_libpq, describe_target, redact
from efir_pipeline.core.errors import DatabaseUnavailable

APPLICATION_NAME = "efir-pipeline"
CONNECT_TIMEOUT_S = 5
SEARCH_PATH = "pg_catalog, pg_temp"
"""Every session of ours resolves names in pg_catalog only (pg_temp last, for relations):
our SQL qualifies everything else, so nothing another role creates in ``public`` or in
a schema of its own can stand in for a built-in function inside a refresh."""


def session_options(url: str) -> str:
    """The URL's own libpq ``options`` with the pinned search_path added."""
    try:
        given = conninfo_to_dict(as_libpq(url)).get("options") or ""
    except psycopg.ProgrammingError:
        given = ""
    pinned = "-c search_path=" + SEARCH_PATH.replace(" ", "").replace(",", "\\,")
    return f"{given} {pinned}".strip()


@cache
def database_url() -> str:
    """DATABASE_URL when set (validated with the other settings), else the embedded server."""
    return settings.current().database_url or embedded.start()


def connect(url: str | None = None, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    url = url or database_url()
    try:
        return psycopg.connect(
            url,
            options=session_options(url),
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=APPLICATION_NAME,
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        # libpq's message spans lines ("connection refused" / "Is the server running..."):
        # keep it all, on one line, without any piece of the password.
        reason = redact(" ".join(str(exc).split()), url) or type(exc).__name__
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
