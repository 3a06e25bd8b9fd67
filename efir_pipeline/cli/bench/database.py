"""The scratch database a run measures in, so a benchmark never touches real data.

It is created on the configured server (DATABASE_URL's, else the embedded one) and
dropped on the way out, also on Ctrl-C or an error, unless the caller keeps it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path=f"/{name}", query=query))


@contextlib.contextmanager
def scratch_database(admin_url: str, *, keep: bool, say: Callable[[str], None]) -> Iterator[str]:
    """A new database on ``admin_url``'s server, dropped on the way out (error, Ctrl-C)."""
    name = f"efir_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    say(f"created scratch database {name}")
    try:
        yield url
    finally:
        if keep:
            say(f"kept scratch database {name}: {with_database(admin_url, name)}")
        else:
            _drop(admin_url, name, say)


def _drop(admin_url: str, name: str, say: Callable[[str], None]) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        say(f"dropped scratch database {name}")
    except psycopg.Error as exc:  # keep the original error, say what is left behind
        say(f"could not drop scratch database {name}: {exc}")


def admin_url_from_environment() -> tuple[str, bool]:
    """The server to work on: DATABASE_URL's, else the embedded one (started here)."""
    from efir_pipeline.core import settings
    from efir_pipeline.core.db import embedded

    configured = settings.current().database_url
    if configured:
        return configured, False
    return embedded.start(database="postgres"), True
