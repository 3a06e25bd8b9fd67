"""What every check shares: its result, its thresholds and the reads they all make.

A check returns a plain :class:`HealthResult` (passed, severity, description,
metadata), so the Dagster asset checks, the CLI and the tests run the very same
computation and only the Dagster layer translates it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.rules import RefreshRules
from efir_pipeline.core.settings import Settings
from efir_pipeline.core.values import Duration

WARN = "WARN"
ERROR = "ERROR"
PRIORITIES = ("high", "medium", "low")
MB = 1024 * 1024
SAMPLE_IDS = 10
"""How many ids a failure lists (enough to start looking, short enough to read)."""


@dataclass(frozen=True)
class Thresholds:
    """The limits checks compare against: the settings, overridable per Dagster run."""

    freshness_limits: dict[str, float]
    """Seconds a pending change of each priority may wait (WARN past it, ERROR past twice)."""
    duration_limit_seconds: float
    size_limit_bytes: int
    sample_size: int
    """Versions compared by the reconciliation (all of them when there are fewer)."""
    sample_seed: str | None
    """Fixed seed for the sample; None: the last refresh's id, so the sample is
    reproducible for one refresh and rotates across refreshes."""
    trend_length: int
    statement_timeout: Duration
    """How long any one check query may take (the reconciliation is the long one)."""
    rules: RefreshRules
    """The sensors' priority rules: freshness judges each change by its own deadline."""

    @classmethod
    def default(cls) -> Thresholds:
        """The thresholds of an environment that sets nothing."""
        return cls.from_settings(Settings())

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            freshness_limits={p: settings.freshness_limit(p).seconds for p in PRIORITIES},
            duration_limit_seconds=settings.refresh_duration_limit.seconds,
            size_limit_bytes=int(settings.view_size_limit_mb * MB),
            sample_size=settings.reconciliation_sample,
            sample_seed=settings.reconciliation_seed,
            trend_length=settings.refresh_trend_length,
            statement_timeout=settings.check_statement_timeout,
            rules=RefreshRules.from_settings(settings),
        )

    def with_overrides(self, **overrides: Any) -> Thresholds:
        """A copy with the given (non-None) fields replaced; freshness limits merge."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        limits = overrides.pop("freshness_limits", None)
        if limits:
            overrides["freshness_limits"] = {**self.freshness_limits, **limits}
        return replace(self, **overrides)


@dataclass(frozen=True)
class HealthResult:
    """One check of one view. ``severity`` is what a failure means (WARN or ERROR)."""

    check: str
    view: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ident(view: ManagedView) -> sql.Identifier:
    return sql.Identifier(SCHEMA, view.name)


def is_populated(conn: psycopg.Connection, view: ManagedView) -> bool:
    row = conn.execute(
        "SELECT relispopulated FROM pg_class WHERE oid = to_regclass(%s)",
        (view.qualified_name,),
    ).fetchone()
    return bool(row and row[0])


def never_populated(check: str, view: ManagedView, severity: str) -> HealthResult:
    return HealthResult(
        check,
        view.name,
        False,
        severity,
        f"{view.name} has never been populated: refresh it (efir-pipeline refresh {view.name})",
        {"populated": False},
    )


def view_columns(conn: psycopg.Connection, view: ManagedView) -> list[str]:
    """The materialized view's columns in order (from the catalog of the database)."""
    return [
        name
        for (name,) in conn.execute(
            """SELECT attname FROM pg_attribute
               WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            (view.qualified_name,),
        ).fetchall()
    ]


def last_success(conn: psycopg.Connection, view: ManagedView) -> dict[str, Any] | None:
    """The view's last successful refresh (its ``snapshot_at`` is the data's "as of")."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT id, snapshot_at, finished_at, duration_seconds, row_count, size_bytes,
                  trigger, run_id
           FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success'
           ORDER BY snapshot_at DESC, id DESC LIMIT 1""",
        (view.name,),
    ).fetchone()


def plain(value: Any) -> Any:
    """A JSON-friendly value for metadata (Decimal and UUID as text, datetimes ISO)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "never"
