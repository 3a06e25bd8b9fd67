"""Alert sensors: Dagster decides when something is worth an alert.

- ``run_failure_alert_sensor``: any failed run of this code location (a refresh
  that failed for good, a blocking check that stopped a run, ...);
- ``check_failure_alert_sensor``: asset check evaluations that failed. It alerts
  when a check starts failing or changes severity (WARN -> ERROR), not on every
  evaluation, so the five-minute freshness schedule does not repeat one alert
  every five minutes. It also retries undelivered alerts on every tick.

Both are sensors so that alerting never slows or breaks a run; what an alert says
and how it is delivered is ``efir_pipeline.core.alerts``.
"""

import json
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

import dagster as dg
import psycopg

from efir_pipeline.core.alerts import (
    Alert,
    AlertSettings,
    flush_quietly,
    log,
    reason,
    send,
)
from efir_pipeline.core.catalog import view_names
from efir_pipeline.core.settings import current as current_settings
from efir_pipeline.defs import checks
from efir_pipeline.defs.resources import PostgresResource

SENSOR_INTERVAL_SECONDS = 30


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
                    json.dumps({"event": "efir_alert_outbox_unavailable", "error": reason(exc)})
                )
        yield conn


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
    alert_settings = AlertSettings.from_settings(current_settings())
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
        alert_settings,
    )
    with _maybe_connection(postgres) as conn:
        send([alert], alert_settings, conn)


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


def check_alerts_tick(
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
        flush_quietly(conn, settings)
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
        alert_settings = AlertSettings.from_settings(current_settings())
        with _maybe_connection(postgres) as conn:
            cursor = check_alerts_tick(context.instance, keys, context.cursor, alert_settings, conn)
        context.update_cursor(cursor)
        return dg.SkipReason("alerts evaluated")

    return _sensor


check_failure_alert_sensor = build_check_failure_alert_sensor(checks.check_keys())

SENSORS: list[dg.SensorDefinition] = [run_failure_alert_sensor, check_failure_alert_sensor]
