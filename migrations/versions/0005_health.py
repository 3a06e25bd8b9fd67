"""Health: the history people read, "data as of" for dashboards, and refreshes made
outside the pipeline recorded too.

- ``efir_budget.refresh_history``: ``mv_refresh_log`` plus, for each success, the oldest
  change it newly reflected and the lag it closed.
- ``efir_budget.kpi_freshness``: one row per managed view with its "data as of" time and
  current lag, for dashboards ("data as of 10:42"). It reads the change log through a
  SECURITY DEFINER function: a dashboard role needs SELECT on this view only.
- Event triggers on ``REFRESH MATERIALIZED VIEW``: a refresh of a managed view run
  outside the refresh engine (the app's old endpoint, a DBA in psql) is recorded in
  ``mv_refresh_log`` with the role that ran it, trigger ``outside``, and the snapshot
  taken right before it (so "data as of", freshness and the reflected changes stay
  true). PostgreSQL lets only a superuser create event triggers: run by anyone else,
  this revision says so and goes on without them (docs/adopting.md).

Revision ID: 0005_health
Revises: 0004_views
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements, literal

revision: str = "0005_health"
down_revision: str | None = "0004_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The previous successful refresh of the same view bounds what this one newly reflects;
# txid bounds from both snapshots let the txid index narrow the scan. They hold while
# both snapshots share an origin, and for a pair from before a restore into this
# cluster; the first refresh after a restore scans the log unbounded.
REFRESH_HISTORY = """
CREATE VIEW efir_budget.refresh_history AS
SELECT l.id, l.view_name, l.outcome, l.trigger, l.run_id, l.refreshed_by,
       l.requested_at, l.snapshot_at, l.finished_at,
       l.wait_seconds, l.duration_seconds, l.ran_concurrently, l.row_count, l.size_bytes,
       l.mode, l.versions_recomputed, l.error,
       r.oldest_change_at AS oldest_reflected_change_at,
       CASE WHEN l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
            THEN r.changes END AS reflected_changes,
       extract(epoch FROM l.snapshot_at - r.oldest_change_at)::double precision
           AS lag_closed_seconds
FROM efir_budget.mv_refresh_log l
LEFT JOIN LATERAL (
    SELECT p.snapshot_at, p.reflected_snapshot, p.snapshot_origin
    FROM efir_budget.mv_refresh_log p
    WHERE p.view_name = l.view_name AND p.outcome = 'success' AND p.snapshot_at < l.snapshot_at
    ORDER BY p.snapshot_at DESC
    LIMIT 1
) prev ON true
LEFT JOIN LATERAL (
    SELECT CASE WHEN l.snapshot_origin = prev.snapshot_origin
                  OR l.snapshot_origin IS DISTINCT FROM efir_budget.cluster_id()
                THEN pg_snapshot_xmax(l.reflected_snapshot)::text::bigint
           END AS below,
           CASE WHEN prev.snapshot_origin IN (efir_budget.cluster_id(), l.snapshot_origin)
                THEN pg_snapshot_xmin(prev.reflected_snapshot)::text::bigint
           END AS from_txid
) bound ON true
LEFT JOIN LATERAL (
    SELECT min(c.changed_at) AS oldest_change_at, count(*) AS changes
    FROM efir_budget.change_log c
    WHERE l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
      AND c.txid < coalesce(bound.below, 9223372036854775807)
      AND c.txid >= coalesce(bound.from_txid, 0)
      AND efir_budget.is_reflected(c.txid, c.origin, l.reflected_snapshot, l.snapshot_origin)
      AND CASE
            WHEN prev.reflected_snapshot IS NOT NULL THEN
                 NOT efir_budget.is_reflected(c.txid, c.origin, prev.reflected_snapshot,
                                              prev.snapshot_origin)
            WHEN prev.snapshot_at IS NOT NULL THEN c.changed_at > prev.snapshot_at
            ELSE true
          END
      AND (c.table_name IN (SELECT efir_budget.view_source_tables(l.view_name))
           OR (c.operation = 'REQUEST' AND c.table_name = l.view_name))
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
VIEW_FRESHNESS = """
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
        FROM efir_budget.outstanding_changes(m.matviewname::text, NULL, NULL) c
    ) u
    WHERE m.schemaname = 'efir_budget'
    ORDER BY m.matviewname
$fn$
"""

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

# Before the REFRESH: the moment and the snapshot (REFRESH takes its own snapshot later,
# so it sees at least as much: the record can only understate what it reflects). The
# refresh engine marks its own refreshes (efir.engine_refresh), which it records itself.
OUTSIDE_REFRESH_START = """
CREATE FUNCTION efir_budget.outside_refresh_start() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF coalesce(current_setting('efir.engine_refresh', true), '') = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config('efir.outside_refresh_at', clock_timestamp()::text, true);
    PERFORM set_config('efir.outside_refresh_snapshot', pg_current_snapshot()::text, true);
END
$fn$
"""

OUTSIDE_REFRESH_END = """
CREATE FUNCTION efir_budget.outside_refresh_end() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cmd       record;
    started   timestamptz;
    own       pg_snapshot;
    snap      pg_snapshot;
    origin    bigint;
    change_id bigint;
    n         bigint;
BEGIN
    IF coalesce(current_setting('efir.engine_refresh', true), '') = 'on' THEN
        RETURN;
    END IF;
    started := coalesce(nullif(current_setting('efir.outside_refresh_at', true), '')::timestamptz,
                        statement_timestamp());
    -- Without the snapshot noted before the REFRESH nothing is claimed reflected: one
    -- taken now could see changes the REFRESH did not.
    own := nullif(current_setting('efir.outside_refresh_snapshot', true), '')::pg_snapshot;
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE object_type = 'materialized view' AND schema_name = 'efir_budget'
    LOOP
        -- REFRESH ... WITH NO DATA empties the view: no data to be "as of".
        CONTINUE WHEN NOT (SELECT c.relispopulated FROM pg_class c WHERE c.oid = cmd.objid);
        snap := NULL;
        origin := NULL;
        change_id := NULL;
        IF own IS NOT NULL THEN
            SELECT p.reflected_snapshot, p.snapshot_origin, p.reflected_change_id
            INTO snap, origin, change_id
            FROM efir_budget.reflection_point(
                (SELECT c.relname::text FROM pg_class c WHERE c.oid = cmd.objid), own) p;
        END IF;
        EXECUTE format('SELECT count(*) FROM %s', cmd.objid::regclass) INTO n;
        INSERT INTO efir_budget.mv_refresh_log
            (view_name, outcome, trigger, refreshed_by, requested_at, snapshot_at, finished_at,
             duration_seconds, row_count, size_bytes, reflected_snapshot, snapshot_origin,
             reflected_change_id)
        SELECT c.relname, 'success', 'outside', session_user, started, started,
               clock_timestamp(), extract(epoch FROM clock_timestamp() - started), n,
               pg_total_relation_size(c.oid), snap, origin, change_id
        FROM pg_class c WHERE c.oid = cmd.objid;
    END LOOP;
END
$fn$
"""

EVENT_TRIGGERS = """
DO $do$
BEGIN
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        CREATE EVENT TRIGGER efir_outside_refresh_start ON ddl_command_start
            WHEN TAG IN ('REFRESH MATERIALIZED VIEW')
            EXECUTE FUNCTION efir_budget.outside_refresh_start();
        CREATE EVENT TRIGGER efir_outside_refresh_end ON ddl_command_end
            WHEN TAG IN ('REFRESH MATERIALIZED VIEW')
            EXECUTE FUNCTION efir_budget.outside_refresh_end();
    ELSE
        RAISE NOTICE 'not a superuser: REFRESHes run outside efir-pipeline will not be '
                     'recorded (a superuser can rerun this revision to record them)';
    END IF;
END
$do$
"""

DROP_EVENT_TRIGGERS = """
DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'efir_outside_refresh_end') THEN
        DROP EVENT TRIGGER efir_outside_refresh_end;
    END IF;
    IF EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'efir_outside_refresh_start') THEN
        DROP EVENT TRIGGER efir_outside_refresh_start;
    END IF;
END
$do$
"""


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

    op.execute(VIEW_FRESHNESS)
    op.execute(
        "COMMENT ON FUNCTION efir_budget.view_freshness() IS "
        + literal(
            "Rows of efir_budget.kpi_freshness; SECURITY DEFINER so readers need no access "
            "to change_log."
        )
    )
    op.execute(
        "CREATE VIEW efir_budget.kpi_freshness AS SELECT * FROM efir_budget.view_freshness()"
    )
    for statement in comment_statements(
        "VIEW",
        "efir_budget.kpi_freshness",
        "One row per managed materialized view: its data-as-of time and current lag, for "
        "dashboards (SELECT data_as_of FROM efir_budget.kpi_freshness WHERE view_name = ...).",
        KPI_FRESHNESS_COLUMNS,
    ):
        op.execute(statement)

    op.execute(OUTSIDE_REFRESH_START)
    op.execute(OUTSIDE_REFRESH_END)
    for name, text in (
        ("outside_refresh_start", "Event trigger function: notes the moment and snapshot "
         "before a REFRESH MATERIALIZED VIEW run outside the refresh engine."),
        ("outside_refresh_end", "Event trigger function: records a REFRESH of a managed view "
         "run outside the refresh engine in mv_refresh_log (trigger outside)."),
    ):  # fmt: skip
        op.execute(f"REVOKE ALL ON FUNCTION efir_budget.{name}() FROM PUBLIC")
        op.execute(f"COMMENT ON FUNCTION efir_budget.{name}() IS {literal(text)}")
    op.execute(EVENT_TRIGGERS)


def downgrade() -> None:
    op.execute(DROP_EVENT_TRIGGERS)
    op.execute("DROP FUNCTION efir_budget.outside_refresh_end()")
    op.execute("DROP FUNCTION efir_budget.outside_refresh_start()")
    op.execute("DROP VIEW efir_budget.kpi_freshness")
    op.execute("DROP FUNCTION efir_budget.view_freshness()")
    op.execute("DROP VIEW efir_budget.refresh_history")
