"""Alerts: a JSON log line always; a webhook POST when configured; retried when it is down.

The webhook is a real HTTP server on 127.0.0.1 in a thread; a dead webhook is a port
nothing listens on. Check failures come from real asset-check runs on an ephemeral
Dagster instance, run failures from a real failed refresh run.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.alerts import Alert, AlertSettings, flush, send
from efir_pipeline.core.settings import Settings
from efir_pipeline.core.settings import current as current_settings
from efir_pipeline.defs import alerts, assets, checks
from efir_pipeline.defs.resources import PostgresResource
from tests.support.factories import add_versions_with_lines, age_changes, refresh_all


class Sink:
    """A webhook receiver that records every JSON body it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server names it so
                length = int(self.headers.get("Content-Length", 0))
                sink.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(monkeypatch) -> Iterator[Sink]:
    with Sink() as s:
        monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", s.url)
        monkeypatch.setenv("EFIR_DAGSTER_URL", "http://dagster.example:3000/")
        yield s


def closed_port_url() -> str:
    """A URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# A status change makes every view that reads budget_versions stale: one alert each.
STALE_VIEWS = sorted(v.name for v in catalog.views_reading("budget_versions"))


def alert_lines(caplog, event: str = "efir_alert") -> list[dict]:
    lines = []
    for record in caplog.records:
        if record.name != "efir_pipeline.alerts":
            continue
        try:
            data = json.loads(record.getMessage())
        except ValueError:
            continue
        if data.get("event") == event:
            lines.append(data)
    return lines


def stale_freshness_run(conn, db_url, postgres, instance: dg.DagsterInstance) -> str:
    """A freshness-checks run failing (WARN) on every view reading budget_versions."""
    versions = add_versions_with_lines(conn, 2)
    refresh_all(db_url)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (versions[0],)
    )
    age_changes(conn, "7 minutes")
    return run_freshness(postgres, instance)


def run_freshness(postgres, instance) -> str:
    defs = dg.Definitions(
        assets=[*assets.SOURCE_SPECS, *assets.VIEW_ASSETS],
        asset_checks=checks.VIEW_CHECKS,
        jobs=[checks.freshness_checks_job],
        resources={"postgres": postgres},
    )
    result = defs.resolve_job_def(checks.FRESHNESS_JOB).execute_in_process(instance=instance)
    return result.run_id


def tick(instance, postgres, cursor: str | None) -> str | None:
    """One tick of the check-failure sensor; returns its new cursor."""
    sensor = alerts.build_check_failure_alert_sensor(checks.check_keys())
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"postgres": postgres}
    )
    sensor(context)
    return context.cursor


def outbox(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        """SELECT kind, payload->>'view', attempts, delivered_at IS NOT NULL, last_error
           FROM efir_budget.alert_outbox ORDER BY id"""
    ).fetchall()


def test_a_failing_check_posts_json_and_logs_a_line(conn, db_url, postgres, sink, caplog):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    instance = dg.DagsterInstance.ephemeral()
    run_id = stale_freshness_run(conn, db_url, postgres, instance)

    cursor = tick(instance, postgres, None)

    assert sorted(m["view"] for m in sink.received) == STALE_VIEWS
    by_view = {m["view"]: m for m in sink.received}
    message = by_view["mv_kpi_dashboard"]
    assert message["kind"] == "check_failure" and message["check"] == "freshness"
    assert message["severity"] == "WARN" and message["run_id"] == run_id
    assert message["url"] == f"http://dagster.example:3000/runs/{run_id}"
    assert "mv_kpi_dashboard" in message["text"] and "freshness" in message["text"]
    assert [line["view"] for line in alert_lines(caplog)] == [m["view"] for m in sink.received]
    assert [row[3] for row in outbox(conn)] == [True] * len(STALE_VIEWS)

    # The same failure again (the 5-minute schedule) is not alerted twice ...
    run_freshness(postgres, instance)
    cursor = tick(instance, postgres, cursor)
    assert len(sink.received) == len(STALE_VIEWS)
    # ... but a worse one is.
    age_changes(conn, "11 minutes")
    run_freshness(postgres, instance)
    tick(instance, postgres, cursor)
    escalated = sink.received[len(STALE_VIEWS) :]
    assert sorted(m["view"] for m in escalated) == STALE_VIEWS
    assert {m["severity"] for m in escalated} == {"ERROR"}


def test_a_dead_webhook_is_logged_kept_and_retried_next_tick(
    conn, db_url, postgres, sink, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", closed_port_url())
    instance = dg.DagsterInstance.ephemeral()
    stale_freshness_run(conn, db_url, postgres, instance)

    cursor = tick(instance, postgres, None)  # must not raise

    assert sink.received == []
    assert len(alert_lines(caplog)) == len(STALE_VIEWS)  # logged whatever happens
    failures = alert_lines(caplog, "efir_alert_delivery_failed")
    assert failures and "Connection refused" in failures[0]["error"]
    rows = outbox(conn)
    assert [(r[0], r[3]) for r in rows] == [("check_failure", False)] * len(STALE_VIEWS)
    assert rows[0][2] == 1 and "Connection refused" in rows[0][4]

    # the webhook is back (here at another address: the settings are read again)
    monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", sink.url)
    current_settings.cache_clear()
    cursor = tick(instance, postgres, cursor)
    assert sorted(m["view"] for m in sink.received) == STALE_VIEWS
    assert all(r[3] for r in outbox(conn))
    tick(instance, postgres, cursor)
    assert len(sink.received) == len(STALE_VIEWS)  # delivered once, not again


def test_an_undeliverable_alert_is_given_up_after_the_configured_time(
    conn, postgres, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", closed_port_url())
    settings = AlertSettings.from_settings(Settings.from_env())
    send([Alert(kind="check_failure", summary="x")], settings, conn)
    conn.execute("UPDATE efir_budget.alert_outbox SET created_at = now() - interval '2 days'")
    report = flush(conn, settings)
    assert report.gave_up == 1 and report.pending == 0
    assert alert_lines(caplog, "efir_alert_given_up")


def test_without_a_webhook_alerts_are_only_logged(conn, db_url, postgres, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    monkeypatch.delenv("EFIR_ALERT_WEBHOOK_URL", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    stale_freshness_run(conn, db_url, postgres, instance)
    tick(instance, postgres, None)
    assert len(alert_lines(caplog)) == len(STALE_VIEWS)
    assert outbox(conn) == []


def test_with_the_database_down_the_alert_is_posted_directly(conn, db_url, postgres, sink, caplog):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    instance = dg.DagsterInstance.ephemeral()
    stale_freshness_run(conn, db_url, postgres, instance)
    down = PostgresResource(database_url="postgresql://postgres@127.0.0.1:1/none")
    tick(instance, down, None)
    assert len(sink.received) == len(STALE_VIEWS)
    assert alert_lines(caplog, "efir_alert_outbox_unavailable")


def failed_refresh_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """A real refresh run that fails: its database does not answer."""
    unreachable = PostgresResource(
        database_url="postgresql://postgres@127.0.0.1:1/none", transient_retries=0
    )
    result = dg.materialize(
        [*assets.SOURCE_SPECS, assets.VIEW_ASSET_BY_NAME["mv_kpi_dashboard"]],
        instance=instance,
        resources={"postgres": unreachable},
        raise_on_error=False,
    )
    assert not result.success
    return result


def run_failure_tick(instance, result, postgres) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="efir_run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"postgres": postgres},
    ).for_run_failure()
    alerts.run_failure_alert_sensor(context)


def test_a_failed_run_posts_json_with_the_error_and_a_link(conn, postgres, sink, caplog):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    instance = dg.DagsterInstance.ephemeral()
    result = failed_refresh_run(instance)

    run_failure_tick(instance, result, postgres)

    (message,) = sink.received
    assert message["kind"] == "run_failure"
    assert message["run_id"] == result.run_id
    assert message["url"] == f"http://dagster.example:3000/runs/{result.run_id}"
    assert "127.0.0.1:1" in message["error"]  # the refresh's own error, not a generic one
    assert message["job"] == result.dagster_run.job_name
    assert message["view"] == "mv_kpi_dashboard"
    (line,) = alert_lines(caplog)
    assert line["run_id"] == result.run_id


def test_a_run_failure_alert_survives_a_dead_webhook(
    conn, db_url, postgres, sink, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", closed_port_url())
    instance = dg.DagsterInstance.ephemeral()
    result = failed_refresh_run(instance)

    run_failure_tick(instance, result, postgres)  # must not raise
    assert [(r[0], r[3]) for r in outbox(conn)] == [("run_failure", False)]
    assert alert_lines(caplog, "efir_alert_delivery_failed")

    monkeypatch.setenv("EFIR_ALERT_WEBHOOK_URL", sink.url)
    current_settings.cache_clear()
    tick(instance, postgres, None)  # the check sensor's tick retries the outbox
    assert [m["run_id"] for m in sink.received] == [result.run_id]
