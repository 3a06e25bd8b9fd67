"""alembic environment: one URL resolution for alembic, the CLI and the tests."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

from efir_pipeline.core.db.connection import session_options
from efir_pipeline.core.db.migrate import VERSION_TABLE, VERSION_TABLE_SCHEMA
from efir_pipeline.core.db.urls import with_driver

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from efir_pipeline.core.db.connection import database_url

        url = database_url()
    return with_driver(url, "psycopg")


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        literal_binds=True,
        transaction_per_migration=True,
        version_table=VERSION_TABLE,
        version_table_schema=VERSION_TABLE_SCHEMA,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    # The same pinned search_path as every other session of ours: the migrations qualify
    # every name, so nothing planted in another schema can stand in for a built-in.
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={"options": session_options(url)}
    )
    with engine.connect() as connection:
        # The version table lives in the schema the migrations build: it must exist first.
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
        connection.commit()
        # Each revision in its own transaction: a failure leaves the previous ones applied
        # and this one fully rolled back (PostgreSQL DDL is transactional).
        context.configure(
            connection=connection,
            transaction_per_migration=True,
            version_table=VERSION_TABLE,
            version_table_schema=VERSION_TABLE_SCHEMA,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
