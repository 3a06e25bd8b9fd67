"""Every setting of efir-pipeline, declared once: name, type, default, range, meaning.

Why one module: the CLI, the Dagster code location and the tests must read the
environment the same way, and an operator must find every knob in one list. Each
field of :class:`Settings` carries its environment variable, default (as written in
the environment), kind (``efir_pipeline.core.values``: one duration grammar, ranges)
and a line of documentation. ``docs/examples/efir.env.example`` and the guide's
settings table are generated from these declarations (``efir-pipeline docs``) and a
test keeps them from drifting.

Values are validated once, where a process starts (:func:`current`: the CLI before
any command, the code location when it loads): a bad value is a ConfigError naming
every bad setting (the CLI exits 2), never a surprise in the middle of a refresh.
Besides these, only process plumbing (``DAGSTER_HOME``, ``PATH``) is read elsewhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from efir_pipeline.core.db.urls import validate_url
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.values import (
    PG_TIMEOUT,
    CronKind,
    Duration,
    DurationKind,
    HttpUrlKind,
    Kind,
    NumberKind,
    OwnersKind,
    PathKind,
    RoleNameKind,
    TimezoneKind,
    parse_duration,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DATABASE = "Database"
ROLES = "Roles (`efir-pipeline db roles`)"
ENGINE = "Refresh engine"
RULES = "Refresh rules (sensors)"
SCHEDULES = "Schedules and pruning"
CHECKS = "Checks"
ALERTS = "Alerts"
DAGSTER = "Dagster"


class DatabaseUrlKind(Kind):
    grammar = "postgresql:// URL (libpq parameters allowed)"

    def parse(self, text: str) -> str:
        try:
            return validate_url(text)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("DATABASE_URL ")) from None


@dataclass(frozen=True)
class Spec:
    """One setting as the environment and the docs see it."""

    env: str
    kind: Kind
    default: str | None
    """As written in the environment; None: unset by default."""
    doc: str
    group: str
    secret: bool = False
    """Never echoed, not even in an error message."""
    example: str | None = None
    """A production value for the env template (shown commented out unless ``required``)."""
    required: bool = False
    """Set in every production deployment (an uncommented line in the env template)."""


def _setting(
    env: str,
    default: str | None,
    kind: Kind,
    doc: str,
    group: str,
    *,
    secret: bool = False,
    example: str | None = None,
    required: bool = False,
):
    spec = Spec(env, kind, default, doc, group, secret, example, required)
    value = kind.parse(default) if default is not None else None
    return field(default=value, metadata={"spec": spec})


def _duration(lo: str, hi: str) -> DurationKind:
    return DurationKind(parse_duration(lo).seconds, parse_duration(hi).seconds)


@dataclass(frozen=True)
class Settings:
    """The validated settings of one process (defaults when the environment is silent)."""

    database_url: str | None = _setting(
        "DATABASE_URL", None, DatabaseUrlKind(),
        "The budget database (log in as the pipeline role). Unset: the embedded PostgreSQL "
        "under the data folder. libpq parameters ride along, e.g. sslmode=verify-full.",
        DATABASE, secret=True, required=True,
        example="postgresql://efir_pipeline:CHANGE_ME@db.internal:5432/efir?sslmode=require",
    )  # fmt: skip
    data_dir: Path | None = _setting(
        "EFIR_DATA_DIR", None, PathKind(),
        "Embedded cluster and Dagster home. Unset: .efir/ in the checkout "
        "(/var/tmp/efir-pipeline-* when root runs a checkout under /root).",
        DATABASE,
    )  # fmt: skip

    role_pipeline: str = _setting(
        "EFIR_ROLE_PIPELINE", "efir_pipeline", RoleNameKind(),
        "Owns and refreshes the views; Dagster logs in as it.", ROLES,
    )  # fmt: skip
    role_dashboard: str = _setting(
        "EFIR_ROLE_DASHBOARD", "efir_dashboard", RoleNameKind(),
        "Reads the views and kpi_freshness only.", ROLES,
    )  # fmt: skip
    role_app: str = _setting(
        "EFIR_ROLE_APP", "efir_app", RoleNameKind(),
        "The budget app: writes the source tables the views read, asks for refreshes.", ROLES,
    )  # fmt: skip
    role_capture: str = _setting(
        "EFIR_ROLE_CAPTURE", "efir_capture", RoleNameKind(),
        "No login: owns the functions that log changes, so no login role can switch change "
        "capture off.", ROLES,
    )  # fmt: skip

    lock_timeout: Duration = _setting(
        "EFIR_LOCK_TIMEOUT", "30s", PG_TIMEOUT,
        "Longest wait for a lock on the view or its tables inside a refresh.", ENGINE,
    )  # fmt: skip
    statement_timeout: Duration = _setting(
        "EFIR_STATEMENT_TIMEOUT", "10min", PG_TIMEOUT,
        "Longest any statement of a refresh may run.", ENGINE,
    )  # fmt: skip
    refresh_wait_timeout: Duration = _setting(
        "EFIR_REFRESH_WAIT_TIMEOUT", "15min", PG_TIMEOUT,
        "Longest wait for another refresh of the same view to finish.", ENGINE,
    )  # fmt: skip

    bulk_rows: int = _setting(
        "EFIR_BULK_ROWS", "100", NumberKind(int, 1, 1_000_000_000),
        "A transaction writing more rows than this to one table is high priority.", RULES,
    )  # fmt: skip
    medium_level_fraction: float = _setting(
        "EFIR_MEDIUM_LEVEL_FRACTION", "0.10", NumberKind(float, 0, 1),
        "An enrollment change touching more than this share of a version's levels is medium.",
        RULES,
    )  # fmt: skip
    medium_batch_window: Duration = _setting(
        "EFIR_MEDIUM_BATCH_WINDOW", "50min", _duration("0s", "24h"),
        "Medium changes are collected this long after the first, then refreshed together.",
        RULES,
    )  # fmt: skip
    high_sensor_interval: Duration = _setting(
        "EFIR_HIGH_SENSOR_INTERVAL", "4s", _duration("1s", "1h"),
        "Least time between two reads of the change log by the high-priority sensor. Dagster's "
        "daemon evaluates sensors once per loop of 5 s or more: 4 s means every loop (5 s would "
        "skip a loop, 10 s between reads, whenever a loop comes round a moment early).", RULES,
    )  # fmt: skip
    medium_sensor_interval: Duration = _setting(
        "EFIR_MEDIUM_SENSOR_INTERVAL", "60s", _duration("1s", "1h"),
        "How often the medium-priority sensor reads the change log.", RULES,
    )  # fmt: skip
    activity_sensor_interval: Duration = _setting(
        "EFIR_ACTIVITY_SENSOR_INTERVAL", "4s", _duration("1s", "1h"),
        "Least time between two reports to Dagster of refreshes made outside its runs (CLI, "
        "app, psql, as materializations) and of source-table changes (as observations); 4 s "
        "means every loop of the daemon (see EFIR_HIGH_SENSOR_INTERVAL).", DAGSTER,
    )  # fmt: skip
    asset_owners: tuple[str, ...] = _setting(
        "EFIR_ASSET_OWNERS", "team:efir-budget", OwnersKind(),
        "Owners shown on every asset in Dagster.", DAGSTER,
    )  # fmt: skip

    nightly_cron: str = _setting(
        "EFIR_NIGHTLY_CRON", "0 2 * * *", CronKind(),
        "When every view is fully refreshed (low-priority changes wait for it).", SCHEDULES,
    )  # fmt: skip
    nightly_tz: str = _setting(
        "EFIR_NIGHTLY_TZ", "Asia/Riyadh", TimezoneKind(),
        "Time zone of the nightly, pruning and freshness schedules.", SCHEDULES,
    )  # fmt: skip
    prune_cron: str = _setting(
        "EFIR_PRUNE_CRON", "30 2 * * *", CronKind(),
        "When the change log is pruned.", SCHEDULES,
    )  # fmt: skip
    change_log_retention: Duration = _setting(
        "EFIR_CHANGE_LOG_RETENTION", "30d", _duration("1h", "3650d"),
        "Reflected change-log rows older than this are pruned (unreflected ones stay).",
        SCHEDULES,
    )  # fmt: skip

    freshness_check_cron: str = _setting(
        "EFIR_FRESHNESS_CHECK_CRON", "*/5 * * * *", CronKind(),
        "When the freshness checks run on their own (between refreshes).", CHECKS,
    )  # fmt: skip
    freshness_limit_high: Duration = _setting(
        "EFIR_FRESHNESS_LIMIT_HIGH", "5min", _duration("1s", "365d"),
        "Oldest a pending high-priority change may be (WARN past it, ERROR past twice).",
        CHECKS,
    )  # fmt: skip
    freshness_limit_medium: Duration = _setting(
        "EFIR_FRESHNESS_LIMIT_MEDIUM", "1h", _duration("1s", "365d"),
        "The same for a medium-priority change.", CHECKS,
    )  # fmt: skip
    freshness_limit_low: Duration = _setting(
        "EFIR_FRESHNESS_LIMIT_LOW", "26h", _duration("1s", "365d"),
        "The same for a low-priority change.", CHECKS,
    )  # fmt: skip
    refresh_duration_limit: Duration = _setting(
        "EFIR_REFRESH_DURATION_LIMIT", "5s", _duration("1ms", "1d"),
        "A refresh slower than this warns.", CHECKS,
    )  # fmt: skip
    refresh_trend_length: int = _setting(
        "EFIR_REFRESH_TREND_LENGTH", "20", NumberKind(int, 1, 1000),
        "Refreshes shown in the duration check's trend.", CHECKS,
    )  # fmt: skip
    view_size_limit_mb: float = _setting(
        "EFIR_VIEW_SIZE_LIMIT_MB", "50", NumberKind(float, 0.001, 10_000_000),
        "A view (with its indexes) larger than this many MB warns.", CHECKS,
    )  # fmt: skip
    reconciliation_sample: int = _setting(
        "EFIR_RECONCILIATION_SAMPLE", "20", NumberKind(int, 1, 100_000),
        "Versions the reconciliation compares with the live query (all when fewer).", CHECKS,
    )  # fmt: skip
    reconciliation_seed: str | None = _setting(
        "EFIR_RECONCILIATION_SEED", None, Kind(),
        "Fixed sample seed. Unset: the last refresh's id (the sample rotates).", CHECKS,
    )  # fmt: skip
    check_statement_timeout: Duration = _setting(
        "EFIR_CHECK_STATEMENT_TIMEOUT", "2min", PG_TIMEOUT,
        "Longest any one check query may run.", CHECKS,
    )  # fmt: skip

    alert_webhook_url: str | None = _setting(
        "EFIR_ALERT_WEBHOOK_URL", None, HttpUrlKind(),
        "Alerts are POSTed here as JSON. Unset: alerts are log lines only. A chat webhook "
        "URL carries its secret: keep it in the environment, never in code or dagster.yaml.",
        ALERTS, secret=True, example="https://hooks.example.com/services/CHANGE_ME",
    )  # fmt: skip
    dagster_url: str = _setting(
        "EFIR_DAGSTER_URL", "http://127.0.0.1:3000", HttpUrlKind(),
        "The Dagster UI as people reach it (links in alerts).", ALERTS,
    )  # fmt: skip
    alert_timeout: Duration = _setting(
        "EFIR_ALERT_TIMEOUT", "5s", _duration("100ms", "5min"),
        "Longest wait for the webhook to answer.", ALERTS,
    )  # fmt: skip
    alert_give_up_after: Duration = _setting(
        "EFIR_ALERT_GIVE_UP_AFTER", "24h", _duration("1min", "30d"),
        "An undelivered alert is retried this long (it was logged in any case).", ALERTS,
    )  # fmt: skip

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every setting; one ConfigError lists all the bad ones."""
        environ = os.environ if environ is None else environ
        values, problems = {}, []
        for f in fields(cls):
            spec: Spec = f.metadata["spec"]
            raw = environ.get(spec.env, "").strip()
            if not raw:
                continue
            try:
                values[f.name] = spec.kind.parse(raw)
            except ValueError as exc:
                shown = "(hidden)" if spec.secret else repr(raw)
                reason = str(exc).replace(repr(raw), "").strip() or str(exc)
                problems.append(f"{spec.env}={shown} {reason} (expected: {spec.kind.grammar})")
        if problems:
            raise ConfigError("bad setting: " + "; ".join(problems))
        return cls(**values)

    def freshness_limit(self, priority: str) -> Duration:
        return getattr(self, f"freshness_limit_{priority}")

    def data_folder(self) -> Path:
        """EFIR_DATA_DIR, else ``.efir`` in the checkout.

        As root, a folder under /root is not used: the embedded server runs as an
        unprivileged user that cannot enter /root, and opening /root up is not ours to do.
        """
        if self.data_dir is not None:
            return self.data_dir
        default = PROJECT_ROOT / ".efir"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and default.is_relative_to("/root"):
            digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:10]
            return Path("/var/tmp") / f"efir-pipeline-{digest}"
        return default


def specs() -> list[Spec]:
    """Every setting, in declaration order (the order of the generated docs)."""
    return [f.metadata["spec"] for f in fields(Settings)]


@cache
def current() -> Settings:
    """This process's settings, validated once (the entry points call it first)."""
    return Settings.from_env()


def data_dir() -> Path:
    return current().data_folder()
