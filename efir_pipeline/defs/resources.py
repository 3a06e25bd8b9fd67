"""The budget database as a Dagster resource, shared by assets, checks and sensors.

Why a resource rather than calls to ``efir_pipeline.core.db`` from each asset: one place
decides which database Dagster talks to and with which timeouts, and the Dagster UI
shows (and lets a launchpad override) that configuration. The resource is a thin
shell: connecting and refreshing stay in the Dagster-free ``efir_pipeline.core.db``, so
the CLI and Dagster share one engine and one refresh history.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from pydantic import Field

from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db import connection as db_connection
from efir_pipeline.core.db.refresh import RefreshResult, refresh_view
from efir_pipeline.core.settings import RefreshSettings, check_duration, validate_url

RESOURCE_KEY = "postgres"
"""The key every asset, check and sensor uses to ask for the database."""


class PostgresResource(dg.ConfigurableResource):
    """The EFIR budget database (schema ``efir_budget``) and how refreshes may use it.

    Unset fields fall back to the environment (``DATABASE_URL``, ``EFIR_LOCK_TIMEOUT``,
    ``EFIR_STATEMENT_TIMEOUT``, ``EFIR_REFRESH_WAIT_TIMEOUT``) exactly as the CLI does,
    so ``efir-pipeline refresh`` and a Dagster materialization behave the same.
    Nothing connects until a refresh or query asks: loading definitions never
    touches the database.
    """

    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL. Unset: DATABASE_URL, else the embedded server "
        "under the project data folder.",
    )
    lock_timeout: str | None = Field(
        default=None,
        description="PostgreSQL duration a refresh waits for locks (default: EFIR_LOCK_TIMEOUT or 30s).",
    )
    statement_timeout: str | None = Field(
        default=None,
        description="PostgreSQL duration a refresh may run (default: EFIR_STATEMENT_TIMEOUT or 10min).",
    )
    wait_timeout: str | None = Field(
        default=None,
        description="How long to wait for another refresh of the same view "
        "(default: EFIR_REFRESH_WAIT_TIMEOUT or 15min).",
    )
    transient_retries: int = Field(
        default=3,
        description="Retries of a refresh that failed on a transient error (lock timeout, "
        "serialization failure, lost connection). Other errors fail at once.",
    )
    retry_wait_seconds: float = Field(default=10.0, description="Seconds between those retries.")

    def url(self) -> str:
        """The libpq URL to use (starting the embedded server if nothing is configured)."""
        if self.database_url and self.database_url.strip():
            return validate_url(self.database_url)
        return db_connection.database_url()

    def refresh_settings(self) -> RefreshSettings:
        """The environment's settings, overridden by whatever this resource sets."""
        overrides = {
            name: check_duration(f"postgres.{name}", getattr(self, name))
            for name in ("lock_timeout", "statement_timeout", "wait_timeout")
            if getattr(self, name)
        }
        return dataclasses.replace(RefreshSettings.from_env(), **overrides)

    @contextmanager
    def connection(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
        """A short-lived connection (5 s connect timeout); closed on exit."""
        with db_connection.connection(self.url(), autocommit=autocommit) as conn:
            yield conn

    def refresh(
        self, view: ManagedView, *, trigger: str, run_id: str | None = None, full: bool = False
    ) -> RefreshResult:
        """Refresh one view through the shared engine (advisory lock, timeouts, history);
        ``full`` recomputes every version of an incremental view too."""
        return refresh_view(
            view,
            url=self.url(),
            settings=self.refresh_settings(),
            trigger=trigger,
            run_id=run_id,
            full=full,
        )


def postgres_resource() -> PostgresResource:
    """The resource the code location uses.

    ``DATABASE_URL`` is passed as ``dg.EnvVar`` (resolved in each run process, never
    shown in the UI). When it is unset, a bare ``EnvVar`` would fail every run, so the
    field stays empty and the embedded server is used instead; ``efir-pipeline start``
    always exports ``DATABASE_URL`` so every Dagster process shares one server.
    """
    if os.environ.get("DATABASE_URL", "").strip():
        return PostgresResource(database_url=dg.EnvVar("DATABASE_URL"))
    return PostgresResource()
