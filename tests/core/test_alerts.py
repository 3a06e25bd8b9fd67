"""Alert delivery, Dagster-free: nothing logged or queued carries the webhook's secret."""

from __future__ import annotations

import logging

from efir_pipeline.core.alerts import Alert, AlertSettings, post, reason, send
from efir_pipeline.core.settings import Settings

# A chat webhook carries its token in the path; a space makes http.client quote the path
# back in its error ("URL can't contain control characters. '/services/...'").
WEBHOOK = "https://hooks.example.com/services/T0KEN-SECRET-1234 x"


def test_an_error_quoting_the_url_is_scrubbed():
    try:
        post(WEBHOOK, {"text": "x"}, 1.0)
    except Exception as exc:
        assert "T0KEN-SECRET" in str(exc)  # the raw error does carry it
        assert "T0KEN-SECRET" not in reason(exc, WEBHOOK)
    else:
        raise AssertionError("posting to an invalid URL must fail")


def test_neither_the_outbox_nor_the_log_keeps_the_token(conn, caplog):
    caplog.set_level(logging.INFO, logger="efir_pipeline.alerts")
    settings = AlertSettings.from_settings(Settings.from_env({"EFIR_ALERT_WEBHOOK_URL": WEBHOOK}))
    send([Alert(kind="check_failure", summary="x")], settings, conn)
    (error,) = conn.execute("SELECT last_error FROM efir_budget.alert_outbox").fetchone()
    assert error and "T0KEN-SECRET" not in error
    assert "T0KEN-SECRET" not in caplog.text
