"""alembic, driven from Python, and the one question every entry point asks first:
is this database at the schema revision this code was written for?

Entry points (the CLI, the Dagster resource, the refresh engine) call
:func:`require_current` instead of guessing from which tables exist, so no code
path carries a fallback for an older schema: a database behind (or ahead of) the
code is refused with the command that fixes it (exit status 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg import sql

from efir_pipeline.core.db import source_schema
from efir_pipeline.core.db.connection import connect
from efir_pipeline.core.db.urls import describe_target
from efir_pipeline.core.errors import ConfigError, MigrationsNotApplied
from efir_pipeline.core.settings import PROJECT_ROOT

SOURCE_SCHEMA_REVISION = "0001_source_schema"
VERSION_TABLE = "efir_pipeline_revision"
VERSION_TABLE_SCHEMA = "efir_budget"
"""Where alembic records the applied revision of this project: a name of its own, so it
never meets the budget app's own ``efir_budget.alembic_version``, and a fixed schema,
so no ``search_path`` can point it at another table."""


def alembic_config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


@contextmanager
def _alembic(url: str) -> Iterator[Config]:
    """An alembic config for ``url``, with errors people can act on.

    The server is reached once first, so an unreachable one is a DatabaseUnavailable
    naming the host (exit 3) rather than a SQLAlchemy traceback; alembic's own usage
    errors (an unknown revision) become a ConfigError (exit 2).
    """
    connect(url).close()
    try:
        yield alembic_config(url)
    except CommandError as exc:
        raise ConfigError(f"alembic: {exc}") from exc


def upgrade(url: str, revision: str = "head") -> None:
    with _alembic(url) as cfg:
        _refuse_the_apps_database(url)
        command.upgrade(cfg, revision)


def _refuse_the_apps_database(url: str) -> None:
    """A database with the budget app's tables and no revision of ours is adopted, not
    upgraded: the first revision would try to create those tables."""
    with connect(url, autocommit=True) as conn:
        if applied(conn) is None and source_schema.present_tables(conn):
            raise MigrationsNotApplied(
                f"the database {describe_target(url)} already has the budget app's tables: "
                "run `efir-pipeline db adopt` (not db upgrade)"
            )


def downgrade(url: str, revision: str) -> None:
    with _alembic(url) as cfg:
        command.downgrade(cfg, revision)


def stamp(url: str, revision: str) -> None:
    with _alembic(url) as cfg:
        command.stamp(cfg, revision)


@cache
def head() -> str:
    """The latest revision of this checkout's migrations."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def applied(conn: psycopg.Connection) -> str | None:
    """The revision the database is at (None: no migration of this project applied)."""
    table = f"{VERSION_TABLE_SCHEMA}.{VERSION_TABLE}"
    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
        return None
    row = conn.execute(
        sql.SQL("SELECT version_num FROM {}").format(
            sql.Identifier(VERSION_TABLE_SCHEMA, VERSION_TABLE)
        )
    ).fetchone()
    return row[0] if row else None


def current_revision(url: str) -> str | None:
    with connect(url, autocommit=True) as conn:
        return applied(conn)


def head_revision(url: str | None = None) -> str:
    return head()


def require_current(conn: psycopg.Connection) -> None:
    """Refuse (MigrationsNotApplied, exit 4) a database not at :func:`head`."""
    at, wanted = applied(conn), head()
    if at == wanted:
        return
    where = describe_target(conn.info.dsn)
    if at is None:
        raise MigrationsNotApplied(
            f"the database {where} has no efir-pipeline schema: run `efir-pipeline db upgrade` "
            "(or `efir-pipeline db adopt` on the budget app's database)"
        )
    raise MigrationsNotApplied(
        f"the database {where} is at revision {at}, this efir-pipeline needs {wanted}: "
        f"run `efir-pipeline db upgrade` (or `db downgrade {at}` with the matching code)"
    )
