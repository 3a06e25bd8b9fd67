"""Health: refresh history with the lag each refresh closed, freshness for dashboards, alert outbox.

- ``efir_budget.refresh_history``: ``mv_refresh_log`` plus, for each successful refresh,
  the oldest change it reflected that the previous successful refresh of the same view
  did not, and the lag it closed (its ``snapshot_at`` minus that change's time). Which
  changes a refresh reflects is 0004's rule: the change's transaction is visible in the
  refresh's ``reflected_snapshot``. A refresh recorded before change capture falls back
  to comparing times.
- ``efir_budget.kpi_freshness``: one row per managed materialized view with its "data as
  of" time and its current lag, so the app can show "data as of 10:42". It reads the
  change log through a SECURITY DEFINER function: a dashboard role needs SELECT on this
  view only, not on ``change_log``.
- ``efir_budget.alert_outbox``: alerts waiting for (or done with) webhook delivery, so an
  alert raised while the webhook is down is retried on the next sensor tick instead of
  being lost.

Revision ID: 0005_health
Revises: 0004_change_capture
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements

revision: str = "0005_health"
down_revision: str | None = "0004_change_capture"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The previous successful refresh of the same view bounds what this one newly reflects.
# txid >= xmin(previous) is implied by "not visible to the previous refresh" and
# txid < xmax(this) by "visible to this one"; both let the txid index narrow the scan.
REFRESH_HISTORY = """
CREATE VIEW efir_budget.refresh_history AS
SELECT l.id, l.view_name, l.outcome, l.trigger, l.run_id,
       l.requested_at, l.snapshot_at, l.finished_at,
       l.wait_seconds, l.duration_seconds, l.ran_concurrently, l.row_count, l.size_bytes,
       l.error,
       r.oldest_change_at AS oldest_reflected_change_at,
       CASE WHEN l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
            THEN r.changes END AS reflected_changes,
       extract(epoch FROM l.snapshot_at - r.oldest_change_at)::double precision
           AS lag_closed_seconds
FROM efir_budget.mv_refresh_log l
LEFT JOIN LATERAL (
    SELECT p.snapshot_at, p.reflected_snapshot
    FROM efir_budget.mv_refresh_log p
    WHERE p.view_name = l.view_name AND p.outcome = 'success' AND p.snapshot_at < l.snapshot_at
    ORDER BY p.snapshot_at DESC
    LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT min(c.changed_at) AS oldest_change_at, count(*) AS changes
    FROM efir_budget.change_log c
    WHERE l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
      AND c.txid < pg_snapshot_xmax(l.reflected_snapshot)::text::bigint
      AND pg_visible_in_snapshot(c.txid::text::xid8, l.reflected_snapshot)
      AND CASE
            WHEN prev.reflected_snapshot IS NOT NULL THEN
                 c.txid >= pg_snapshot_xmin(prev.reflected_snapshot)::text::bigint
                 AND NOT pg_visible_in_snapshot(c.txid::text::xid8, prev.reflected_snapshot)
            WHEN prev.snapshot_at IS NOT NULL THEN c.changed_at > prev.snapshot_at
            ELSE true
          END
      AND c.table_name IN (SELECT efir_budget.view_source_tables(l.view_name))
) r ON true
"""

# The columns shared with mv_refresh_log keep its comments (copied, so they cannot drift).
COPY_REFRESH_LOG_COMMENTS = """
DO $do$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT a.attname, col_description(a.attrelid, a.attnum) AS text
        FROM pg_attribute a
        JOIN pg_attribute h ON h.attrelid = 'efir_budget.refresh_history'::regclass
                           AND h.attname = a.attname
        WHERE a.attrelid = 'efir_budget.mv_refresh_log'::regclass AND a.attnum > 0
          AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) IS NOT NULL
    LOOP
        EXECUTE format('COMMENT ON COLUMN efir_budget.refresh_history.%I IS %L', c.attname, c.text);
    END LOOP;
END
$do$
"""

REFRESH_HISTORY_COLUMNS = {
    "id": "mv_refresh_log.id of the attempt (newest last).",
    "oldest_reflected_change_at": "changed_at of the oldest change this refresh reflected "
    "that the previous successful refresh of the view did not (NULL: none, or not a success).",
    "reflected_changes": "How many change_log rows this refresh newly reflected.",
    "lag_closed_seconds": "snapshot_at minus oldest_reflected_change_at: how long the oldest "
    "change this refresh brought in had waited for it.",
}

# lag_seconds: NULL while the view was never refreshed, 0 when nothing is pending.
VIEW_FRESHNESS_FUNCTION = """
CREATE FUNCTION efir_budget.view_freshness()
RETURNS TABLE (
    view_name                    text,
    populated                    boolean,
    data_as_of                   timestamptz,
    last_refresh_at              timestamptz,
    last_refresh_seconds         double precision,
    last_outcome                 text,
    last_attempt_at              timestamptz,
    oldest_unreflected_change_at timestamptz,
    pending_changes              bigint,
    lag_seconds                  double precision
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT m.matviewname::text,
           m.ispopulated,
           s.snapshot_at,
           s.finished_at,
           s.duration_seconds,
           a.outcome,
           a.finished_at,
           u.oldest,
           u.pending,
           CASE
               WHEN s.snapshot_at IS NULL THEN NULL
               WHEN u.oldest IS NULL THEN 0
               ELSE greatest(extract(epoch FROM now() - u.oldest), 0)
           END::double precision
    FROM pg_matviews m
    LEFT JOIN LATERAL (
        SELECT l.snapshot_at, l.finished_at, l.duration_seconds
        FROM efir_budget.mv_refresh_log l
        WHERE l.view_name = m.matviewname AND l.outcome = 'success'
        ORDER BY l.snapshot_at DESC LIMIT 1
    ) s ON true
    LEFT JOIN LATERAL (
        SELECT l.outcome, l.finished_at
        FROM efir_budget.mv_refresh_log l
        WHERE l.view_name = m.matviewname
        ORDER BY l.id DESC LIMIT 1
    ) a ON true
    CROSS JOIN LATERAL (
        SELECT min(c.changed_at) AS oldest, count(*) AS pending
        FROM efir_budget.unreflected_changes(m.matviewname::text) c
    ) u
    WHERE m.schemaname = 'efir_budget'
    ORDER BY m.matviewname
$fn$
"""

KPI_FRESHNESS = (
    "CREATE VIEW efir_budget.kpi_freshness AS SELECT * FROM efir_budget.view_freshness()"
)

KPI_FRESHNESS_COLUMNS = {
    "view_name": "Managed materialized view, e.g. mv_kpi_dashboard.",
    "populated": "False until the first refresh: the view cannot be read yet.",
    "data_as_of": "snapshot_at of the last successful refresh: the view reflects every change "
    "committed before it. Show it as 'data as of'.",
    "last_refresh_at": "When that refresh finished.",
    "last_refresh_seconds": "How long that refresh's REFRESH statement took.",
    "last_outcome": "Outcome of the latest refresh attempt (success, failed, skipped, coalesced).",
    "last_attempt_at": "When the latest attempt ended.",
    "oldest_unreflected_change_at": "changed_at of the oldest source change the view does not "
    "reflect yet; NULL when up to date.",
    "pending_changes": "change_log rows the view does not reflect yet.",
    "lag_seconds": "Age of the oldest unreflected change (0 when up to date, NULL when never "
    "refreshed): how far behind the source the view is.",
}

ALERT_OUTBOX = """
CREATE TABLE efir_budget.alert_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    CONSTRAINT ck_alert_outbox_done_once CHECK (delivered_at IS NULL OR gave_up_at IS NULL)
)
"""

ALERT_OUTBOX_COLUMNS = {
    "created_at": "When the alert was raised.",
    "kind": "run_failure or check_failure.",
    "payload": "The JSON body POSTed to EFIR_ALERT_WEBHOOK_URL (text, view, check, severity, "
    "error, run_id, url, at).",
    "attempts": "Delivery attempts so far.",
    "last_attempt_at": "When delivery was last tried.",
    "last_error": "Why the last attempt failed (connection refused, timeout, HTTP status).",
    "delivered_at": "When the webhook accepted it (2xx); NULL while pending.",
    "gave_up_at": "When retrying stopped (EFIR_ALERT_GIVE_UP_AFTER, default 24h); the alert "
    "was logged in any case.",
}


def upgrade() -> None:
    op.execute(REFRESH_HISTORY)
    for statement in comment_statements(
        "VIEW",
        "efir_budget.refresh_history",
        "mv_refresh_log with, for each successful refresh, the oldest change it newly reflected "
        "and the lag it closed (efir-pipeline history reads it).",
        REFRESH_HISTORY_COLUMNS,
    ):
        op.execute(statement)
    op.execute(COPY_REFRESH_LOG_COMMENTS)

    op.execute(VIEW_FRESHNESS_FUNCTION)
    op.execute(
        "COMMENT ON FUNCTION efir_budget.view_freshness() IS "
        "'Rows of efir_budget.kpi_freshness; SECURITY DEFINER so readers need no access to "
        "change_log.'"
    )
    op.execute(KPI_FRESHNESS)
    for statement in comment_statements(
        "VIEW",
        "efir_budget.kpi_freshness",
        "One row per managed materialized view: its data-as-of time and current lag, for "
        "dashboards (SELECT data_as_of FROM efir_budget.kpi_freshness WHERE view_name = ...).",
        KPI_FRESHNESS_COLUMNS,
    ):
        op.execute(statement)

    op.execute(ALERT_OUTBOX)
    op.execute(
        "CREATE INDEX ix_alert_outbox_pending ON efir_budget.alert_outbox (id) "
        "WHERE delivered_at IS NULL AND gave_up_at IS NULL"
    )
    op.execute("REVOKE ALL ON efir_budget.alert_outbox FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.alert_outbox",
        "Alerts for the webhook (EFIR_ALERT_WEBHOOK_URL): queued when raised, retried by the "
        "efir_check_failure_alert sensor until delivered; delivered rows kept 30 days.",
        ALERT_OUTBOX_COLUMNS,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS efir_budget.alert_outbox")
    op.execute("DROP VIEW IF EXISTS efir_budget.kpi_freshness")
    op.execute("DROP FUNCTION IF EXISTS efir_budget.view_freshness()")
    op.execute("DROP VIEW IF EXISTS efir_budget.refresh_history")
