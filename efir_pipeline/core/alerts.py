"""Alerts: what one says, and its delivery (a JSON log line always, a webhook POST when
configured, queued in ``efir_budget.alert_outbox`` and retried until delivered).

Dagster-free: the Dagster sensors (``efir_pipeline.defs.alerts``) decide *when* to
alert; this module only formats, logs, queues and posts, so it is tested and reused
without Dagster. Every alert is first logged as one JSON line (logger
``efir_pipeline.alerts``), whatever happens next. With ``EFIR_ALERT_WEBHOOK_URL`` set
it is queued and the outbox flushed: POST with a short timeout, oldest first,
stopping at the first failure; an undelivered alert is retried on the next tick until
``EFIR_ALERT_GIVE_UP_AFTER``. When even the database is unreachable the POST is tried
directly. Nothing here raises into a sensor: failures are logged, and the webhook's
secret never appears in a log line or in ``alert_outbox.last_error``.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg
from psycopg.types.json import Jsonb

from efir_pipeline.core.settings import Settings

log = logging.getLogger("efir_pipeline.alerts")

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
FLUSH_BATCH = 50
KEEP_DELIVERED_DAYS = 30


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = None
    dagster_url: str = DEFAULT_DAGSTER_URL
    timeout_seconds: float = 5.0
    give_up_after_seconds: float = 24 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertSettings:
        return cls(
            webhook_url=settings.alert_webhook_url,
            dagster_url=settings.dagster_url,
            timeout_seconds=settings.alert_timeout.seconds,
            give_up_after_seconds=settings.alert_give_up_after.seconds,
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


def reason(exc: BaseException, webhook_url: str | None = None) -> str:
    """One line saying why a delivery failed, without the webhook's secret parts.

    Chat webhooks carry their token in the path or the query, and some errors quote
    the URL (an invalid one, say): those parts never reach a log line or the outbox.
    """
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".strip()
    return redact_url(line, webhook_url)


def redact_url(text: str, url: str | None) -> str:
    if not url:
        return text
    parts = urlsplit(url)
    secrets = [
        url,
        parts.path,
        parts.query,
        parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "",
    ]
    secrets += [
        piece for piece in re.split(r"[/?&=]", f"{parts.path}?{parts.query}") if len(piece) >= 6
    ]
    for secret in sorted(filter(None, set(secrets)), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
                reason_text = reason(exc, settings.webhook_url)
                conn.execute(
                    """UPDATE efir_budget.alert_outbox
                       SET attempts = attempts + 1, last_attempt_at = now(), last_error = %s
                       WHERE id = %s""",
                    (reason_text, outbox_id),
                )
                log.warning(
                    json.dumps(
                        {
                            "event": "efir_alert_delivery_failed",
                            "outbox_id": outbox_id,
                            "error": reason_text,
                            "retry": "next sensor tick",
                        }
                    )
                )
                report.failed += 1
                report.error = reason_text
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


def flush_quietly(conn: psycopg.Connection, settings: AlertSettings) -> FlushReport | None:
    """Flush, logging (never raising) a database error: a sensor tick must not crash."""
    try:
        return flush(conn, settings)
    except psycopg.Error as exc:
        log.warning(json.dumps({"event": "efir_alert_outbox_unavailable", "error": reason(exc)}))
        return None


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
                json.dumps(
                    {
                        "event": "efir_alert_outbox_unavailable",
                        "error": reason(exc, settings.webhook_url),
                    }
                )
            )
        else:
            flush_quietly(conn, settings)
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
                        "error": reason(exc, settings.webhook_url),
                        "retry": "next sensor tick",
                        "alert": alert.summary,
                    }
                )
            )
            ok = False
    return ok
