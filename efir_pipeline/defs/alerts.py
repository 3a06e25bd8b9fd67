"""Alerts: a JSON log line always, a webhook POST when configured, retried until delivered.

Two sources raise alerts, both as Dagster sensors so that alerting never slows or
breaks a run:

- ``run_failure_alert_sensor``: any failed run of this code location (a refresh
  that failed for good, a blocking check that stopped a run, ...);
- ``check_failure_alert_sensor``: asset check evaluations that failed. It alerts
  when a check starts failing or changes severity (WARN -> ERROR), not on every
  evaluation, so the five-minute freshness schedule does not repeat one alert
  every five minutes. It also retries undelivered alerts on every tick.

Delivery: every alert is first logged as one JSON line (logger
``efir_pipeline.defs.alerts``), whatever happens next. With ``EFIR_ALERT_WEBHOOK_URL``
set, it is queued in ``efir_budget.alert_outbox`` and the outbox is flushed: POST
with a short timeout, oldest first, stopping at the first failure. An alert that
could not be delivered stays queued and is retried on the next tick until
``EFIR_ALERT_GIVE_UP_AFTER`` (default 24h). When even the database is unreachable
the POST is tried directly, and the check sensor keeps the alert in its cursor to
try again. Nothing here raises into a sensor: failures are logged.

Settings: ``EFIR_ALERT_WEBHOOK_URL`` (unset: log only), ``EFIR_DAGSTER_URL`` (links,
default http://127.0.0.1:3000), ``EFIR_ALERT_TIMEOUT`` (default 5s).
"""

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import dagster as dg
import psycopg
from psycopg.types.json import Jsonb

from efir_pipeline.core.catalog import view_names
from efir_pipeline.core.db.health import parse_seconds
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.defs import checks
from efir_pipeline.defs.resources import PostgresResource

log = logging.getLogger("efir_pipeline.defs.alerts")

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
FLUSH_BATCH = 50
KEEP_DELIVERED_DAYS = 30
SENSOR_INTERVAL_SECONDS = 30


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = None
    dagster_url: str = DEFAULT_DAGSTER_URL
    timeout_seconds: float = 5.0
    give_up_after_seconds: float = 24 * 3600.0

    @classmethod
    def from_env(cls) -> "AlertSettings":
        webhook = os.environ.get("EFIR_ALERT_WEBHOOK_URL", "").strip() or None
        if webhook and urlsplit(webhook).scheme not in ("http", "https"):
            # Never echo the URL: chat webhooks carry their secret in it.
            raise ConfigError("EFIR_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
        return cls(
            webhook_url=webhook,
            dagster_url=os.environ.get("EFIR_DAGSTER_URL", "").strip() or DEFAULT_DAGSTER_URL,
            timeout_seconds=parse_seconds(
                os.environ.get("EFIR_ALERT_TIMEOUT", "").strip() or "5s", name="EFIR_ALERT_TIMEOUT"
            ),
            give_up_after_seconds=parse_seconds(
                os.environ.get("EFIR_ALERT_GIVE_UP_AFTER", "").strip() or "24h",
                name="EFIR_ALERT_GIVE_UP_AFTER",
            ),
        )

    def run_url(self, run_id: str | None) -> str | None:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}" if run_id else None


@dataclass(frozen=True)
class Alert:
    """What a person needs to act: what broke, where, and a link to the run."""

    kind: str
    """``run_failure`` or ``check_failure``."""
    summary: str
    view: str | None = None
    check: str | None = None
    severity: str | None = None
    error: str | None = None
    job: str | None = None
    run_id: str | None = None
    url: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def payload(self) -> dict:
        """The webhook body: ``text`` for chat webhooks (Slack, Teams, Mattermost), then fields."""
        body = {"text": f"[efir-pipeline] {self.summary}"}
        body.update({k: v for k, v in asdict(self).items() if v is not None})
        return body


def log_alert(alert: Alert) -> None:
    """The structured line every alert produces, delivered or not (WARNING for a WARN check)."""
    level = logging.WARNING if alert.severity == "WARN" else logging.ERROR
    log.log(level, json.dumps({"event": "efir_alert", **alert.payload()}, default=str))


def post(url: str, payload: dict, timeout: float) -> None:
    """POST JSON; raises on a connection error, a timeout or a non-2xx answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "efir-pipeline"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(
                url, response.status, response.reason, response.headers, None
            )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


# --------------------------------------------------------------------------- outbox


def enqueue(conn: psycopg.Connection, alert: Alert) -> int:
    return conn.execute(
        "INSERT INTO efir_budget.alert_outbox (kind, payload) VALUES (%s, %s) RETURNING id",
        (alert.kind, Jsonb(alert.payload())),
    ).fetchone()[0]


@dataclass
class FlushReport:
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    pending: int = 0
    error: str | None = None


def flush(conn: psycopg.Connection, settings: AlertSettings) -> FlushReport:
    """Deliver queued alerts, oldest first; stop at the first failure (the webhook is down).

    Rows are locked (SKIP LOCKED) while they are posted, so two sensors flushing at
    once never send one alert twice.
    """
    report = FlushReport()
    if not settings.webhook_url:
        return report
    with conn.transaction():
        rows = conn.execute(
            """SELECT id, payload, created_at < now() - make_interval(secs => %s)
               FROM efir_budget.alert_outbox
               WHERE delivered_at IS NULL AND gave_up_at IS NULL
               ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
            (settings.give_up_after_seconds, FLUSH_BATCH),
        ).fetchall()
        for outbox_id, payload, too_old in rows:
            if too_old:
                conn.execute(
                    "UPDATE efir_budget.alert_outbox SET gave_up_at = now() WHERE id = %s",
                    (outbox_id,),
                )
                log.error(
                    json.dumps(
                        {"event": "efir_alert_given_up", "outbox_id": outbox_id, **payload},
                        default=str,
                    )
                )
                report.gave_up += 1
                continue
            try:
                post(settings.webhook_url, payload, settings.timeout_seconds)
            except Exception as exc:
                reason = _reason(exc)
                conn.execute(
                    """UPDATE efir_budget.alert_outbox
                       SET attempts = attempts + 1, last_attempt_at = now(), last_error = %s
                       WHERE id = %s""",
                    (reason, outbox_id),
                )
                log.warning(
                    json.dumps(
                        {
                            "event": "efir_alert_delivery_failed",
                            "outbox_id": outbox_id,
                            "error": reason,
                            "retry": "next sensor tick",
                        }
                    )
                )
                report.failed += 1
                report.error = reason
                break
            conn.execute(
                """UPDATE efir_budget.alert_outbox
                   SET attempts = attempts + 1, last_attempt_at = now(), delivered_at = now(),
                       last_error = NULL
                   WHERE id = %s""",
                (outbox_id,),
            )
            report.delivered += 1
        conn.execute(
            """DELETE FROM efir_budget.alert_outbox
               WHERE coalesce(delivered_at, gave_up_at) < now() - make_interval(days => %s)""",
            (KEEP_DELIVERED_DAYS,),
        )
    report.pending = conn.execute(
        """SELECT count(*) FROM efir_budget.alert_outbox
           WHERE delivered_at IS NULL AND gave_up_at IS NULL"""
    ).fetchone()[0]
    return report


def _flush_quietly(conn: psycopg.Connection, settings: AlertSettings) -> FlushReport | None:
    """Flush, logging (never raising) a database error: a sensor tick must not crash."""
    try:
        return flush(conn, settings)
    except psycopg.Error as exc:
        log.warning(json.dumps({"event": "efir_alert_outbox_unavailable", "error": _reason(exc)}))
        return None


@contextmanager
def _maybe_connection(postgres: PostgresResource | None) -> Iterator[psycopg.Connection | None]:
    """A connection when the database answers, else None (alerts still go out)."""
    with ExitStack() as stack:
        conn = None
        if postgres is not None:
            try:
                conn = stack.enter_context(postgres.connection())
            except Exception as exc:
                log.warning(
                    json.dumps({"event": "efir_alert_outbox_unavailable", "error": _reason(exc)})
                )
        yield conn


def send(
    alerts: Iterable[Alert],
    settings: AlertSettings,
    conn: psycopg.Connection | None,
) -> bool:
    """Log each alert, queue it (when there is a webhook) and flush the outbox.

    Returns False only when an alert could be neither delivered nor queued, so the
    caller should keep it and try again later.
    """
    alerts = list(alerts)
    for alert in alerts:
        log_alert(alert)
    if not settings.webhook_url:
        return True
    if conn is not None:
        try:
            with conn.transaction():  # all queued or none: no duplicate by the fallback below
                for alert in alerts:
                    enqueue(conn, alert)
        except psycopg.Error as exc:
            log.warning(
                json.dumps({"event": "efir_alert_outbox_unavailable", "error": _reason(exc)})
            )
        else:
            _flush_quietly(conn, settings)
            return True
    # No outbox: post directly; what fails is the caller's to keep.
    ok = True
    for alert in alerts:
        try:
            post(settings.webhook_url, alert.payload(), settings.timeout_seconds)
        except Exception as exc:
            log.warning(
                json.dumps(
                    {
                        "event": "efir_alert_delivery_failed",
                        "error": _reason(exc),
                        "retry": "next sensor tick",
                        "alert": alert.summary,
                    }
                )
            )
            ok = False
    return ok


# --------------------------------------------------------------------------- run failures


def run_failure_alert(
    job: str, run_id: str, error: str | None, views: Iterable[str], settings: AlertSettings
) -> Alert:
    views = sorted(views)
    first_line = (error or "").strip().splitlines()[0] if (error or "").strip() else None
    where = f" ({', '.join(views)})" if views else ""
    return Alert(
        kind="run_failure",
        summary=f"run of {job}{where} failed: {first_line or 'see the run'}",
        view=", ".join(views) or None,
        error=first_line,
        job=job,
        run_id=run_id,
        url=settings.run_url(run_id),
    )


def failed_views(step_keys: Iterable[str | None], asset_selection=None) -> list[str]:
    """The catalog views a failed run concerns: those whose refresh or check step failed,
    else those the run was asked to materialize."""
    names = set(view_names())
    failed = {
        key.removesuffix("_health") for key in step_keys if key
    } & names  # asset steps are named after the view, check steps <view>_health
    if failed:
        return sorted(failed)
    return sorted(k.to_user_string() for k in (asset_selection or ()))


@dg.run_failure_sensor(
    name="efir_run_failure_alert",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run of this code location: a JSON log line, and a "
    "webhook POST when EFIR_ALERT_WEBHOOK_URL is set (queued in efir_budget.alert_outbox "
    "and retried when the webhook is down).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource):
    settings = AlertSettings.from_env()
    run = context.dagster_run
    error = context.failure_event.message if context.failure_event else None
    failures = context.get_step_failure_events()
    step_errors = [
        e.event_specific_data.error.message
        for e in failures
        if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    ]
    alert = run_failure_alert(
        run.job_name,
        run.run_id,
        step_errors[0] if step_errors else error,
        failed_views([e.step_key for e in failures], run.asset_selection),
        settings,
    )
    with _maybe_connection(postgres) as conn:
        send([alert], settings, conn)


# --------------------------------------------------------------------------- check failures


def check_failure_alert(
    check_key: dg.AssetCheckKey,
    severity: str,
    description: str | None,
    run_id: str,
    settings: AlertSettings,
) -> Alert:
    view = check_key.asset_key.to_user_string()
    detail = (description or "").strip().splitlines()
    return Alert(
        kind="check_failure",
        summary=f"{severity} {view} {check_key.name}: {detail[0] if detail else 'check failed'}",
        view=view,
        check=check_key.name,
        severity=severity,
        error=detail[0] if detail else None,
        run_id=run_id,
        url=settings.run_url(run_id),
    )


def _state_key(check_key: dg.AssetCheckKey) -> str:
    return f"{check_key.asset_key.to_user_string()}:{check_key.name}"


def evaluate_check_alerts(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    cursor: str | None,
    settings: AlertSettings,
    conn: psycopg.Connection | None,
) -> str:
    """One tick of the check sensor; returns the new cursor.

    The cursor maps each check to the last execution seen and the severity last
    alerted. A failing check alerts once, again only if its severity changes, and
    is forgotten when it passes. An alert that could be neither delivered nor
    queued leaves its check's state untouched, so the next tick tries again.
    """
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    keys = list(check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    pending: list[tuple[str, dict, Alert | None]] = []
    for key, record in latest.items():
        name = _state_key(key)
        seen = state.get(name, {})
        if record.id == seen.get("id") or record.event is None:
            continue
        evaluation = record.event.dagster_event and record.event.dagster_event.event_specific_data
        passed = getattr(evaluation, "passed", None)
        if passed is None:  # planned, still running: look again next tick
            continue
        if passed:
            pending.append((name, {"id": record.id, "alerted": None}, None))
            continue
        severity = evaluation.severity.value
        new_state = {"id": record.id, "alerted": severity}
        alert = None
        if seen.get("alerted") != severity:
            alert = check_failure_alert(
                key, severity, evaluation.description, record.run_id, settings
            )
        pending.append((name, new_state, alert))

    alerts = [a for _, _, a in pending if a is not None]
    delivered = send(alerts, settings, conn) if alerts else True
    if not alerts and conn is not None:
        _flush_quietly(conn, settings)
    for name, new_state, alert in pending:
        if alert is None or delivered:
            state[name] = new_state
    return json.dumps(state, sort_keys=True)


def build_check_failure_alert_sensor(
    check_keys: Iterable[dg.AssetCheckKey], name: str = "efir_check_failure_alert"
) -> dg.SensorDefinition:
    """The check sensor over ``check_keys`` (``check_failure_alert_sensor``: every catalog check)."""
    keys = list(check_keys)

    @dg.sensor(
        name=name,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts when an asset check of a managed view starts failing or changes "
        "severity (JSON log line; webhook POST when EFIR_ALERT_WEBHOOK_URL is set), and "
        "retries undelivered alerts from efir_budget.alert_outbox on every tick.",
    )
    def _sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
        settings = AlertSettings.from_env()
        with _maybe_connection(postgres) as conn:
            cursor = evaluate_check_alerts(context.instance, keys, context.cursor, settings, conn)
        context.update_cursor(cursor)
        return dg.SkipReason("alerts evaluated")

    return _sensor


check_failure_alert_sensor = build_check_failure_alert_sensor(checks.check_keys())

SENSORS: list[dg.SensorDefinition] = [run_failure_alert_sensor, check_failure_alert_sensor]
