"""The budget database as a Dagster resource, shared by assets, checks and sensors.

Why a resource rather than calls to the core from each asset: one place decides
which database Dagster talks to and with which timeouts, and the Dagster UI shows
(and lets a launchpad override) that configuration. The resource is a thin shell:
connecting and refreshing stay in the Dagster-free core, so the CLI and Dagster
share one engine and one refresh history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from pydantic import Field

from efir_pipeline.core import settings
from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db import connection as db_connection
from efir_pipeline.core.db.migrate import require_current
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult, RefreshSettings
from efir_pipeline.core.db.urls import validate_url

RESOURCE_KEY = "postgres"
"""The key every asset, check and sensor uses to ask for the database."""


class PostgresResource(dg.ConfigurableResource):
    """The EFIR budget database (schema `efir_budget`) and how refreshes may use it.

    Unset fields fall back to the settings (`DATABASE_URL`, `EFIR_LOCK_TIMEOUT`,
    `EFIR_STATEMENT_TIMEOUT`, `EFIR_REFRESH_WAIT_TIMEOUT`) exactly as the command line
    does, so `efir-pipeline refresh` and a Dagster materialization behave the same.
    Nothing connects until a refresh or query asks, and every connection first checks
    that the database is at the schema revision this code needs.
    """

    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL. Unset: DATABASE_URL, else the embedded server "
        "under the project data folder.",
    )
    lock_timeout: str | None = Field(
        default=None,
        description="How long a refresh waits for locks, e.g. 30s (default: EFIR_LOCK_TIMEOUT).",
    )
    statement_timeout: str | None = Field(
        default=None,
        description="How long a refresh may run, e.g. 10min (default: EFIR_STATEMENT_TIMEOUT).",
    )
    wait_timeout: str | None = Field(
        default=None,
        description="How long to wait for another refresh of the same view, e.g. 15min "
        "(default: EFIR_REFRESH_WAIT_TIMEOUT).",
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
        """The settings' timeouts, overridden by whatever this resource sets."""
        return RefreshSettings.from_settings(settings.current()).overridden(
            lock_timeout=self.lock_timeout,
            statement_timeout=self.statement_timeout,
            wait_timeout=self.wait_timeout,
        )

    @contextmanager
    def connection(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
        """A short-lived connection to a database at the current revision; closed on exit."""
        with db_connection.connection(self.url(), autocommit=autocommit) as conn:
            require_current(conn)
            yield conn

    def refresh(
        self, view: ManagedView, *, trigger: str, run_id: str | None = None, full: bool = False
    ) -> RefreshResult:
        """Refresh one view through the shared engine (lock, timeouts, history);
        `full` recomputes every version of an incremental view too."""
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

    `DATABASE_URL` is passed as `dg.EnvVar` (resolved in each run process, never
    shown in the UI). When it is unset, a bare `EnvVar` would fail every run, so the
    field stays empty and the embedded server is used instead; `efir-pipeline start`
    always exports `DATABASE_URL` so every Dagster process shares one server.
    """
    if settings.current().database_url:
        return PostgresResource(database_url=dg.EnvVar("DATABASE_URL"))
    return PostgresResource()
