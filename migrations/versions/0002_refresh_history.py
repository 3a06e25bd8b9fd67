"""Refresh history: one row per refresh attempt of a managed view, and the alert outbox.

Dashboards read their "data as of" time from the last success here, operators read
durations and failures, checks read trends, and the change log's "reflected" rule
reads the snapshot each success recorded. It lives outside the views on purpose: a
refresh time inside a view would rewrite every row on every refresh.

Revision ID: 0002_refresh_history
Revises: 0001_source_schema
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements

revision: str = "0002_refresh_history"
down_revision: str | None = "0001_source_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFRESH_LOG = """
CREATE TABLE efir_budget.mv_refresh_log (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view_name           text NOT NULL,
    outcome             text NOT NULL
        CONSTRAINT ck_mv_refresh_log_outcome
        CHECK (outcome IN ('success', 'failed', 'skipped', 'coalesced')),
    trigger             text NOT NULL DEFAULT 'manual',
    run_id              text,
    refreshed_by        text NOT NULL DEFAULT session_user,
    requested_at        timestamptz NOT NULL,
    snapshot_at         timestamptz,
    finished_at         timestamptz NOT NULL,
    wait_seconds        double precision NOT NULL DEFAULT 0,
    duration_seconds    double precision NOT NULL DEFAULT 0,
    ran_concurrently    boolean,
    row_count           bigint,
    size_bytes          bigint,
    mode                text
        CONSTRAINT ck_mv_refresh_log_mode CHECK (mode IN ('full', 'incremental')),
    versions_recomputed bigint,
    reflected_snapshot  pg_snapshot,
    snapshot_origin     bigint,
    reflected_change_id bigint,
    error               text,
    txid                bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    origin              bigint NOT NULL DEFAULT efir_budget.cluster_id(),
    CONSTRAINT ck_mv_refresh_log_success_has_snapshot
        CHECK (outcome <> 'success' OR (snapshot_at IS NOT NULL AND row_count IS NOT NULL)),
    CONSTRAINT ck_mv_refresh_log_snapshot_has_origin
        CHECK ((reflected_snapshot IS NULL) = (snapshot_origin IS NULL))
)
"""

# Transaction ids and snapshots mean something only in the cluster that issued them: a
# pg_dump restored elsewhere starts a new counter, usually far below the old one. Every
# txid and snapshot the pipeline stores is therefore stamped with the cluster's identity
# (fixed at initdb; shared by physical replicas, whose txids are the same).
CLUSTER_ID = """
CREATE FUNCTION efir_budget.cluster_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT system_identifier FROM pg_control_system())
"""

REFRESH_LOG_COLUMNS = {
    "view_name": "Managed view, e.g. mv_kpi_dashboard.",
    "outcome": "success; failed (rolled back, previous rows intact); skipped (another refresh "
    "held the view and the caller chose not to wait); coalesced (a refresh that started after "
    "this request already succeeded, so none was needed).",
    "trigger": "Who asked: manual, prepare, schedule, sensor:high, sensor:medium, dagster, "
    "outside (a REFRESH run outside the engine: the app, a DBA in psql), ...",
    "run_id": "Dagster run id when the refresh ran inside Dagster.",
    "refreshed_by": "The database role that ran it (session_user).",
    "requested_at": "When the refresh was asked for (before waiting for the view's turn).",
    "snapshot_at": "Moment the REFRESH statement started: the view reflects every change "
    "committed before it. Dashboards show it as data as of.",
    "finished_at": "When the attempt ended (commit or rollback).",
    "wait_seconds": "Seconds spent waiting for another refresh of the same view.",
    "duration_seconds": "Seconds the REFRESH statement itself took.",
    "ran_concurrently": "Whether REFRESH ... CONCURRENTLY was used (plain only when never "
    "populated); NULL when run outside the engine.",
    "row_count": "Rows in the view after the refresh.",
    "size_bytes": "pg_total_relation_size of the view (table and indexes) after the refresh.",
    "mode": "Successful engine refreshes: full (every row recomputed) or incremental "
    "(strategy per_version: only the versions with unsynced changes); NULL outside the engine.",
    "versions_recomputed": "How many budget versions the refresh computed from the live "
    "query (every live version for a full refresh); NULL for views of strategy full.",
    "reflected_snapshot": "pg_current_snapshot() taken right before the REFRESH statement "
    "(for a view reading other managed views: the earliest of it and their last recorded "
    "ones): the refresh reflects every change_log row whose txid is visible in it.",
    "snapshot_origin": "efir_budget.cluster_id() of the cluster reflected_snapshot was taken "
    "in (a restore into another cluster keeps old rows: their snapshots only compare with "
    "changes of the same origin).",
    "reflected_change_id": "Highest change_log.id visible in reflected_snapshot "
    "(informational: a lower id can commit later and is then not reflected).",
    "error": "The error message of a failed attempt.",
    "txid": "The transaction that wrote the row: a reader holding a snapshot (the Dagster "
    "sensor reporting refreshes) tells the rows it has seen from the ones committed since, "
    "whatever order their ids were drawn in.",
    "origin": "efir_budget.cluster_id() of the cluster txid was issued by.",
}

# One row per managed view (the views' revision adds them). Its row lock is the view's
# turn: only a role with UPDATE here (the pipeline) can take it, so no reader can stall
# refreshes; its counters let a waiting request tell a refresh that started after it
# from one that was already running, without trusting any clock.
REFRESH_STATE = """
CREATE TABLE efir_budget.refresh_state (
    view_name       text PRIMARY KEY,
    generation      bigint NOT NULL DEFAULT 0,
    full_generation bigint NOT NULL DEFAULT 0
)
"""

REFRESH_STATE_COLUMNS = {
    "view_name": "A managed materialized view.",
    "generation": "Successful refreshes of the view by the engine so far (incremented in the "
    "refresh's own transaction, under this row's lock).",
    "full_generation": "Those that recomputed every row (mode full).",
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
    "last_error": "Why the last attempt failed (connection refused, timeout, HTTP status), "
    "without the webhook's secret.",
    "delivered_at": "When the webhook accepted it (2xx); NULL while pending.",
    "gave_up_at": "When retrying stopped (EFIR_ALERT_GIVE_UP_AFTER, default 24h); the alert "
    "was logged in any case.",
}


def upgrade() -> None:
    op.execute(
        "COMMENT ON TABLE efir_budget.efir_pipeline_revision IS "
        "'The efir-pipeline schema revision (alembic); the budget app keeps its own in "
        "alembic_version.'"
    )
    op.execute(CLUSTER_ID)
    op.execute(
        "COMMENT ON FUNCTION efir_budget.cluster_id() IS 'The system identifier of this "
        "PostgreSQL cluster: the origin of the transaction ids and snapshots stored here.'"
    )
    op.execute(REFRESH_LOG)
    op.execute(
        "CREATE INDEX ix_mv_refresh_log_view_finished "
        "ON efir_budget.mv_refresh_log (view_name, finished_at DESC)"
    )
    op.execute("CREATE INDEX ix_mv_refresh_log_txid ON efir_budget.mv_refresh_log (txid)")
    op.execute(
        "CREATE INDEX ix_mv_refresh_log_view_success "
        "ON efir_budget.mv_refresh_log (view_name, snapshot_at DESC) WHERE outcome = 'success'"
    )
    op.execute("REVOKE ALL ON efir_budget.mv_refresh_log FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.mv_refresh_log",
        "One row per refresh attempt of a managed materialized view (written by efir-pipeline).",
        REFRESH_LOG_COLUMNS,
    ):
        op.execute(statement)

    op.execute(REFRESH_STATE)
    op.execute("REVOKE ALL ON efir_budget.refresh_state FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.refresh_state",
        "Per managed view: the lock the refresh engine takes (one refresh at a time) and how "
        "many refreshes succeeded, so a waiting request knows whether one started after it.",
        REFRESH_STATE_COLUMNS,
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
    op.execute("DROP TABLE efir_budget.alert_outbox")
    op.execute("DROP TABLE efir_budget.refresh_state")
    op.execute("DROP TABLE efir_budget.mv_refresh_log")
    op.execute("DROP FUNCTION efir_budget.cluster_id()")
    op.execute("COMMENT ON TABLE efir_budget.efir_pipeline_revision IS NULL")
