"""Refresh history: one row per refresh attempt of a managed view.

Dashboards read their "data as of" time from the last success here, operators
read durations and failures, and checks read trends. It lives outside the views
on purpose: a refresh time inside a view would rewrite every row on every refresh.

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


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE efir_budget.mv_refresh_log (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            view_name        text NOT NULL,
            outcome          text NOT NULL
                CONSTRAINT ck_mv_refresh_log_outcome
                CHECK (outcome IN ('success', 'failed', 'skipped', 'coalesced')),
            trigger          text NOT NULL DEFAULT 'manual',
            run_id           text,
            requested_at     timestamptz NOT NULL,
            snapshot_at      timestamptz,
            finished_at      timestamptz NOT NULL,
            wait_seconds     double precision NOT NULL DEFAULT 0,
            duration_seconds double precision NOT NULL DEFAULT 0,
            ran_concurrently boolean,
            row_count        bigint,
            size_bytes       bigint,
            error            text,
            CONSTRAINT ck_mv_refresh_log_success_has_snapshot
                CHECK (outcome <> 'success' OR (snapshot_at IS NOT NULL AND row_count IS NOT NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_mv_refresh_log_view_finished "
        "ON efir_budget.mv_refresh_log (view_name, finished_at DESC)"
    )
    op.execute(
        "CREATE INDEX ix_mv_refresh_log_view_success "
        "ON efir_budget.mv_refresh_log (view_name, snapshot_at DESC) WHERE outcome = 'success'"
    )
    for statement in comment_statements(
        "TABLE",
        "efir_budget.mv_refresh_log",
        "One row per refresh attempt of a managed materialized view (written by efir-pipeline).",
        {
            "view_name": "Managed view, e.g. mv_kpi_dashboard.",
            "outcome": "success; failed (rolled back, previous rows intact); skipped (another "
            "refresh held the view and the caller chose not to wait); coalesced (a refresh that "
            "started after this request already succeeded, so none was needed).",
            "trigger": "Who asked: manual, schedule, sensor:high, sensor:medium, dagster, ...",
            "run_id": "Dagster run id when the refresh ran inside Dagster.",
            "requested_at": "When the refresh was asked for (before waiting for the per-view lock).",
            "snapshot_at": "Moment the REFRESH statement started: the view reflects every change "
            "committed before it. Dashboards show it as data as of.",
            "finished_at": "When the attempt ended (commit or rollback).",
            "wait_seconds": "Seconds spent waiting for another refresh of the same view.",
            "duration_seconds": "Seconds the REFRESH statement itself took.",
            "ran_concurrently": "Whether REFRESH ... CONCURRENTLY was used (plain only when never populated).",
            "row_count": "Rows in the view after the refresh.",
            "size_bytes": "pg_total_relation_size of the view (table and indexes) after the refresh.",
            "error": "The error message of a failed attempt.",
        },
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS efir_budget.mv_refresh_log")
