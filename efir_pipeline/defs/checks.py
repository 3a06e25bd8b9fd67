"""Dagster asset checks of the managed views, generated from the catalog and the
check registry (``efir_pipeline.core.db.checks.CHECKS``).

One ``@dg.multi_asset_check`` per view runs that view's checks on one connection
(the core computes them; this module only translates). Jobs that
materialize a view include its checks, so they run right after every refresh; the
freshness checks also run every five minutes on their own (``freshness_checks`` job
and schedule), because staleness is what happens when nothing runs.

Completeness and reconciliation are blocking: when they fail (ERROR), assets
downstream of the view in the same run are not materialized and the run fails, so a
wrong view never feeds anything else.

Thresholds: the settings (``EFIR_FRESHNESS_LIMIT_*``, ``EFIR_REFRESH_DURATION_LIMIT``,
``EFIR_VIEW_SIZE_LIMIT_MB``, ``EFIR_RECONCILIATION_SAMPLE`` / ``_SEED``), overridable
per run in the launchpad (``ops: {mv_kpi_dashboard_health: {config: {...}}}``).
"""

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import psycopg
from pydantic import Field

from efir_pipeline.core import settings
from efir_pipeline.core.catalog import VIEWS, ManagedView
from efir_pipeline.core.db import checks
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.values import parse_duration
from efir_pipeline.defs.keys import view_asset_key
from efir_pipeline.defs.resources import PostgresResource
from efir_pipeline.defs.schedules import checked_schedule

FRESHNESS_JOB = "freshness_checks"


class HealthCheckConfig(dg.Config):
    """Per-run overrides of the thresholds; unset fields use the environment or defaults."""

    freshness_limit_high: str | None = Field(
        default=None, description="e.g. 5min (default: EFIR_FRESHNESS_LIMIT_HIGH or 5min)"
    )
    freshness_limit_medium: str | None = Field(
        default=None, description="e.g. 1h (default: EFIR_FRESHNESS_LIMIT_MEDIUM or 1h)"
    )
    freshness_limit_low: str | None = Field(
        default=None, description="e.g. 26h (default: EFIR_FRESHNESS_LIMIT_LOW or 26h)"
    )
    refresh_duration_limit: str | None = Field(
        default=None, description="e.g. 5s (default: EFIR_REFRESH_DURATION_LIMIT or 5s)"
    )
    view_size_limit_mb: float | None = Field(
        default=None, description="MB (default: EFIR_VIEW_SIZE_LIMIT_MB or 50)"
    )
    reconciliation_sample: int | None = Field(
        default=None, description="versions compared (default: EFIR_RECONCILIATION_SAMPLE or 20)"
    )
    reconciliation_seed: str | None = Field(
        default=None,
        description="fixed sample seed (default: EFIR_RECONCILIATION_SEED, else the last "
        "refresh's id, so the sample rotates across refreshes)",
    )

    def thresholds(self) -> checks.Thresholds:
        """The settings' thresholds with this run's overrides (same duration grammar)."""
        limits = {
            p: _seconds(v, f"freshness_limit_{p}")
            for p, v in (
                ("high", self.freshness_limit_high),
                ("medium", self.freshness_limit_medium),
                ("low", self.freshness_limit_low),
            )
            if v is not None
        }
        return checks.Thresholds.from_settings(settings.current()).with_overrides(
            freshness_limits=limits,
            duration_limit_seconds=None
            if self.refresh_duration_limit is None
            else _seconds(self.refresh_duration_limit, "refresh_duration_limit"),
            size_limit_bytes=None
            if self.view_size_limit_mb is None
            else int(self.view_size_limit_mb * checks.MB),
            sample_size=self.reconciliation_sample,
            sample_seed=self.reconciliation_seed,
        )


def _seconds(text: str, name: str) -> float:
    try:
        return parse_duration(text).seconds
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def check_key(view: ManagedView | str, check: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(view_asset_key(view), check)


def check_keys(
    views: Iterable[ManagedView] = VIEWS, names: Iterable[str] | None = None
) -> list[dg.AssetCheckKey]:
    """Every check key of the given views (optionally only the named checks)."""
    wanted = set(names) if names is not None else None
    return [
        check_key(v, c)
        for v in views
        for c in checks.checks_for(v)
        if wanted is None or c in wanted
    ]


def metadata_value(value: Any) -> Any:
    """A Dagster metadata value for a plain one (timestamps as timestamps, structures as JSON)."""
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, datetime):
        return dg.MetadataValue.timestamp(value)
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(checks.plain(value))
    return dg.MetadataValue.text(str(value))


def to_check_result(result: checks.HealthResult, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    metadata = {k: metadata_value(v) for k, v in result.metadata.items()}
    metadata["summary"] = dg.MetadataValue.text(result.description)
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity(result.severity),
        description=result.description,
        metadata=metadata,
    )


def run_checks(
    conn: psycopg.Connection,
    view: ManagedView,
    keys: Iterable[dg.AssetCheckKey],
    thresholds: checks.Thresholds,
    log: Any = None,
) -> Iterator[dg.AssetCheckResult]:
    """Run the selected checks of one view, in catalog order.

    A check whose query fails is reported as failed at its own severity, with the
    error, rather than raised: the other checks still report, and a blocking check
    that could not prove the view right still blocks.
    """
    wanted = {k.name for k in keys}
    for name in checks.checks_for(view):
        if name not in wanted:
            continue
        key = check_key(view, name)
        spec = checks.get(name)
        try:
            result = spec.run(conn, view, thresholds)
        except psycopg.Error as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            severity = checks.ERROR if spec.blocking else checks.WARN
            result = checks.HealthResult(
                name, view.name, False, severity, f"could not evaluate: {detail}", {"error": detail}
            )
        if log is not None:
            level = "info" if result.passed else "warning"
            getattr(log, level)(
                f"{view.name} {name}: {'ok' if result.passed else result.severity} "
                f"- {result.description}"
            )
        yield to_check_result(result, key)


def build_view_checks(view: ManagedView) -> dg.AssetChecksDefinition:
    """The checks of one view as one multi-check op (subsettable: any check may run alone)."""
    specs = [
        dg.AssetCheckSpec(
            spec.name,
            asset=view_asset_key(view),
            blocking=spec.blocking,
            description=spec.description,
        )
        for spec in checks.CHECKS
        if spec.applies(view)
    ]

    @dg.multi_asset_check(
        name=f"{view.name}_health",
        specs=specs,
        can_subset=True,
        description=f"Health checks of {view.qualified_name} (efir_pipeline.core.db.checks).",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext,
        config: HealthCheckConfig,
        postgres: PostgresResource,
    ) -> Iterable[dg.AssetCheckResult]:
        thresholds = config.thresholds()
        with postgres.connection() as conn:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (thresholds.statement_timeout.postgres(),),
            )
            yield from run_checks(
                conn, view, context.selected_asset_check_keys, thresholds, context.log
            )

    return _checks


def build_view_checks_all(views: Iterable[ManagedView] = VIEWS) -> list[dg.AssetChecksDefinition]:
    return [build_view_checks(v) for v in views]


VIEW_CHECKS: list[dg.AssetChecksDefinition] = build_view_checks_all()

freshness_checks_job = dg.define_asset_job(
    name=FRESHNESS_JOB,
    selection=dg.AssetSelection.checks(*check_keys(names=[checks.FRESHNESS])),
    description="Only the freshness checks of every managed view: how far behind the source "
    "each view is, noticed even when no refresh runs.",
)


def build_freshness_checks_schedule() -> dg.ScheduleDefinition:
    cron = settings.current().freshness_check_cron
    return checked_schedule(
        "freshness_checks_schedule",
        "EFIR_FRESHNESS_CHECK_CRON",
        cron,
        lambda: dg.ScheduleDefinition(
            name="freshness_checks_schedule",
            job=freshness_checks_job,
            cron_schedule=cron,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Runs the freshness checks at {cron} (EFIR_FRESHNESS_CHECK_CRON).",
        ),
    )


freshness_checks_schedule = build_freshness_checks_schedule()

ASSET_CHECKS: list[dg.AssetChecksDefinition] = [*VIEW_CHECKS]
JOBS = [freshness_checks_job]
SCHEDULES: list[dg.ScheduleDefinition] = [freshness_checks_schedule]
