"""The terms of a refresh: the timeouts it is given, the result it answers, and which of
its failures are worth another try.

Apart from the engine so that callers (the Dagster resource, the command line, the
benchmark) name these without reaching into how a refresh runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime

import psycopg
from psycopg import errors

from efir_pipeline.core.settings import Settings
from efir_pipeline.core.values import PG_TIMEOUT, Duration

# Errors worth an automatic retry: the next attempt may well succeed. A statement
# timeout (QueryCanceled, also an OperationalError) is not one: it would time out again.
TRANSIENT_ERRORS: tuple[type[psycopg.Error], ...] = (
    errors.LockNotAvailable,
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.AdminShutdown,
    errors.CannotConnectNow,
)


def is_transient(exc: psycopg.Error) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    # A lost connection has no SQLSTATE: the server never answered.
    return isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None


@dataclass(frozen=True)
class RefreshResult:
    view: str
    outcome: str  # success | failed | skipped | coalesced
    log_id: int | None
    requested_at: datetime | None
    snapshot_at: datetime | None
    finished_at: datetime | None
    wait_seconds: float
    duration_seconds: float
    concurrently: bool | None
    row_count: int | None
    size_bytes: int | None
    error: str | None = None
    transient: bool = False
    mode: str | None = None
    """Successful refreshes: ``full`` or ``incremental`` (see ``mv_refresh_log.mode``)."""
    versions_recomputed: int | None = None
    """Versions computed from the live query (per_version views; all of them when full)."""

    @property
    def ok(self) -> bool:
        return self.outcome in ("success", "coalesced")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RefreshSettings:
    """How long a refresh may wait and run (``EFIR_*_TIMEOUT``; the resource may override)."""

    lock_timeout: Duration
    """Waiting for PostgreSQL locks on the view itself (e.g. behind DDL)."""
    statement_timeout: Duration
    """The whole refresh transaction's statements."""
    wait_timeout: Duration
    """Waiting for another refresh of the same view to finish."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshSettings:
        return cls(
            lock_timeout=settings.lock_timeout,
            statement_timeout=settings.statement_timeout,
            wait_timeout=settings.refresh_wait_timeout,
        )

    def overridden(self, **durations: str | None) -> RefreshSettings:
        """A copy with some timeouts given as text (``"150ms"``), checked like the settings."""
        return replace(
            self, **{name: PG_TIMEOUT.parse(text) for name, text in durations.items() if text}
        )


def describe_failure(exc: psycopg.Error, settings: RefreshSettings, *, waiting: bool) -> str:
    """The error, naming the setting that ran out so the operator knows which to raise."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if waiting and isinstance(exc, errors.LockNotAvailable | errors.QueryCanceled):
        return (
            f"lock timeout reached while waiting for another refresh of this view "
            f"(EFIR_REFRESH_WAIT_TIMEOUT={settings.wait_timeout}): {first_line}"
        )
    if isinstance(exc, errors.QueryCanceled):
        return (
            f"statement timeout (EFIR_STATEMENT_TIMEOUT={settings.statement_timeout}) "
            f"reached: {first_line}"
        )
    if isinstance(exc, errors.LockNotAvailable):
        return (
            f"lock timeout reached while waiting for the view or its tables "
            f"(EFIR_LOCK_TIMEOUT={settings.lock_timeout}): {first_line}"
        )
    return first_line
