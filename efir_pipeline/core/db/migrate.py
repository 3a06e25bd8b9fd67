"""alembic, driven from Python so the CLI and tests need no alembic.ini lookup by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, pool

from efir_pipeline.core.db.connection import connect
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.settings import PROJECT_ROOT, with_driver

SOURCE_SCHEMA_REVISION = "0001_source_schema"


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
        command.upgrade(cfg, revision)


def downgrade(url: str, revision: str) -> None:
    with _alembic(url) as cfg:
        command.downgrade(cfg, revision)


def stamp(url: str, revision: str) -> None:
    with _alembic(url) as cfg:
        command.stamp(cfg, revision)


def current_revision(url: str) -> str | None:
    connect(url).close()
    engine = create_engine(with_driver(url, "psycopg"), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
