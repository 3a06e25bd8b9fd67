"""The health checks of a managed view, one registry: is it fresh, fast, small and right?

Each check is one :class:`CheckSpec` (name, description, whether it blocks, the
settings holding its thresholds, the function computing it). The Dagster asset
checks, the CLI and the generated docs all read :data:`CHECKS`, so adding a check is
one module and one entry here. Functions take a connection, a catalog view and
:class:`Thresholds` and return a plain :class:`HealthResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db.checks.completeness import COMPLETENESS, completeness
from efir_pipeline.core.db.checks.freshness import FRESHNESS, freshness
from efir_pipeline.core.db.checks.reconciliation import (
    RECONCILIATION,
    reconciliation,
    sample_versions,
)
from efir_pipeline.core.db.checks.refresh_stats import (
    REFRESH_DURATION,
    VIEW_SIZE,
    refresh_duration,
    view_size,
)
from efir_pipeline.core.db.checks.result import (
    ERROR,
    MB,
    PRIORITIES,
    WARN,
    HealthResult,
    Thresholds,
    plain,
)

__all__ = [
    "CHECKS",
    "COMPLETENESS",
    "ERROR",
    "FRESHNESS",
    "MB",
    "PRIORITIES",
    "RECONCILIATION",
    "REFRESH_DURATION",
    "VIEW_SIZE",
    "WARN",
    "CheckSpec",
    "HealthResult",
    "Thresholds",
    "checks_for",
    "completeness",
    "freshness",
    "get",
    "plain",
    "reconciliation",
    "refresh_duration",
    "run_check",
    "sample_versions",
    "view_size",
]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    """What it measures, when it fails and with what severity (shown in Dagster and docs)."""
    blocking: bool
    """A failure stops the views downstream of this one in the same run."""
    settings: tuple[str, ...]
    """The environment variables holding its thresholds."""
    run: Callable[[psycopg.Connection, ManagedView, Thresholds], HealthResult]
    applies: Callable[[ManagedView], bool] = lambda view: True

    @property
    def severity(self) -> str:
        """What a failure is, at worst."""
        return ERROR if self.blocking or self.name == FRESHNESS else WARN


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        FRESHNESS,
        "Age of the oldest source change the view does not reflect yet, per priority (high "
        "5 min, medium 1 h, low 26 h by default): WARN past the limit, ERROR past twice. "
        "Metadata: lag, pending changes per priority, the oldest pending change.",
        blocking=False,
        settings=tuple(f"EFIR_FRESHNESS_LIMIT_{p.upper()}" for p in PRIORITIES),
        run=freshness,
    ),
    CheckSpec(
        REFRESH_DURATION,
        "Duration of the last successful refresh against the limit (5 s by default): WARN. "
        "Metadata: the duration and the trend of the last 20 refreshes.",
        blocking=False,
        settings=("EFIR_REFRESH_DURATION_LIMIT", "EFIR_REFRESH_TREND_LENGTH"),
        run=refresh_duration,
    ),
    CheckSpec(
        VIEW_SIZE,
        "Size of the view with its indexes against the limit (50 MB by default): WARN. "
        "Metadata: size and row count.",
        blocking=False,
        settings=("EFIR_VIEW_SIZE_LIMIT_MB",),
        run=view_size,
    ),
    CheckSpec(
        COMPLETENESS,
        "Exactly one row per non-deleted budget version: ERROR, blocking. Metadata: missing, "
        "extra and duplicated versions.",
        blocking=True,
        settings=(),
        run=lambda conn, view, thresholds: completeness(conn, view),
        applies=lambda view: view.one_row_per_version,
    ),
    CheckSpec(
        RECONCILIATION,
        "A deterministic sample of versions (20 by default, all when fewer) equals the live "
        "defining query column by column: ERROR, blocking. Metadata: the first differing "
        "version, column and both values.",
        blocking=True,
        settings=("EFIR_RECONCILIATION_SAMPLE", "EFIR_RECONCILIATION_SEED"),
        run=reconciliation,
    ),
)
_BY_NAME = {spec.name: spec for spec in CHECKS}


def get(name: str) -> CheckSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown check {name!r}; known: {', '.join(_BY_NAME)}") from None


def checks_for(view: ManagedView) -> tuple[str, ...]:
    """The names of the checks that apply to a view, in registry order."""
    return tuple(spec.name for spec in CHECKS if spec.applies(view))


def run_check(
    conn: psycopg.Connection, view: ManagedView, name: str, thresholds: Thresholds
) -> HealthResult:
    return get(name).run(conn, view, thresholds)
