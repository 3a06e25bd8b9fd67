"""Change capture: every write to a budget table leaves one row per statement and version.

Why in the database: the budget app has several write paths (screens, imports, scripts),
and a trigger is the one place none of them can skip. Why statement level with
transition tables: a bulk import of 10,000 rows must cost one log row per (statement,
version), not 10,000 row triggers.

What is logged, in ``efir_budget.change_log``:

- every source table (reference tables included, with ``budget_version_id`` NULL),
  INSERT / UPDATE / DELETE through statement-level AFTER triggers (PostgreSQL allows
  transition tables only on single-event triggers, hence three triggers per table),
  and TRUNCATE (no transition table exists for it: one row, ``rows_affected`` NULL);
- ``budget_versions``: one row per version written, with the *visible* status before
  and after (NULL while the version does not exist or is soft-deleted), so creating,
  deleting or restoring a version reads as a status change too: it adds or removes a
  dashboard row;
- tables with a ``level_id`` (enrollment_plans, class_structures): the distinct levels
  the statement touched per version, for the "more than 10% of the levels" rule.

No priority is stored: thresholds are configuration (``efir_pipeline.core.rules``), applied
when the sensors read the log, so changing a threshold never needs a migration and the
log keeps facts, not yesterday's opinion of them.

Which changes a refresh reflects: the refresh engine records, right before its REFRESH
statement, ``pg_current_snapshot()`` (``mv_refresh_log.reflected_snapshot``) and the
highest change id visible in it (``reflected_change_id``). A change is reflected by a
refresh when its transaction is visible in that snapshot. The id alone is not enough:
ids are handed out at insert time but become visible at commit, so a transaction can
commit a *lower* id after a refresh saw a higher one. The REFRESH statement's own
snapshot is taken after the recorded one and so sees at least as much: the rule can
only err towards "not yet reflected" (one refresh too many), never the other way.
A view that reads other managed views records the earliest of its own snapshot and
theirs (it reflects their tables only as far as their last refresh did).

Revision ID: 0004_change_capture
Revises: 0003_kpi_views
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements, literal

revision: str = "0004_change_capture"
down_revision: str | None = "0003_kpi_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How each table is captured (all 16 tables of 0001: a view added later may read any).
# version: budget_versions itself; reference: no budget version; levels: a child with a
# level_id; child: any other child of a budget version.
CAPTURED: dict[str, str] = {
    "organizations": "reference",
    "budget_versions": "version",
    "academic_cycles": "reference",
    "academic_levels": "reference",
    "nationality_types": "reference",
    "teacher_categories": "reference",
    "subjects": "reference",
    "enrollment_plans": "levels",
    "class_structures": "levels",
    "dhg_teacher_requirements": "child",
    "teacher_allocations": "child",
    "revenue_plans": "child",
    "personnel_cost_plans": "child",
    "operating_cost_plans": "child",
    "capex_plans": "child",
    "budget_consolidations": "child",
}

TRIGGERS: dict[str, str] = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}

CHANGE_LOG = """
CREATE TABLE efir_budget.change_log (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name        text NOT NULL,
    budget_version_id uuid,
    operation         text NOT NULL
        CONSTRAINT ck_change_log_operation
        CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    rows_affected     bigint
        CONSTRAINT ck_change_log_rows_affected
        CHECK ((operation = 'TRUNCATE') = (rows_affected IS NULL)),
    old_status        efir_budget.budget_version_status,
    new_status        efir_budget.budget_version_status,
    level_ids         uuid[],
    txid              bigint NOT NULL,
    changed_at        timestamptz NOT NULL,
    db_user           text NOT NULL
)
"""

# The writer's transaction id: a change is visible exactly when that transaction is.
# clock_timestamp(): the end of the writing statement, never later than its commit, so
# ages computed from it are never understated.
CAPTURE_FUNCTION = """
CREATE FUNCTION efir_budget.capture_change() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    kind constant text := TG_ARGV[0];
    tx   constant bigint := pg_current_xact_id()::text::bigint;
    ts   constant timestamptz := clock_timestamp();
    who  constant text := session_user;
BEGIN
    IF kind = 'version' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, old_status, new_status,
                 txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, n.id, TG_OP, 1, NULL,
                   CASE WHEN n.deleted_at IS NULL THEN n.status END, tx, ts, who
            FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, old_status, new_status,
                 txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, coalesce(n.id, o.id), TG_OP, 1,
                   CASE WHEN o.deleted_at IS NULL THEN o.status END,
                   CASE WHEN n.deleted_at IS NULL THEN n.status END, tx, ts, who
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id;
        ELSE
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, old_status, new_status,
                 txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, o.id, TG_OP, 1,
                   CASE WHEN o.deleted_at IS NULL THEN o.status END, NULL, tx, ts, who
            FROM old_rows o;
        END IF;

    ELSIF kind = 'levels' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, level_ids, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP, count(*), array_agg(DISTINCT level_id),
                   tx, ts, who
            FROM new_rows GROUP BY budget_version_id;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, level_ids, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP,
                   greatest(count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new)),
                   array_agg(DISTINCT level_id), tx, ts, who
            FROM (SELECT budget_version_id, level_id, true AS is_new FROM new_rows
                  UNION ALL
                  SELECT budget_version_id, level_id, false FROM old_rows) s
            GROUP BY budget_version_id;
        ELSE
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, level_ids, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP, count(*), array_agg(DISTINCT level_id),
                   tx, ts, who
            FROM old_rows GROUP BY budget_version_id;
        END IF;

    ELSIF kind = 'child' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP, count(*), tx, ts, who
            FROM new_rows GROUP BY budget_version_id;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP,
                   greatest(count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new)),
                   tx, ts, who
            FROM (SELECT budget_version_id, true AS is_new FROM new_rows
                  UNION ALL
                  SELECT budget_version_id, false FROM old_rows) s
            GROUP BY budget_version_id;
        ELSE
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, budget_version_id, TG_OP, count(*), tx, ts, who
            FROM old_rows GROUP BY budget_version_id;
        END IF;

    ELSIF kind = 'reference' THEN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO efir_budget.change_log
                (table_name, operation, rows_affected, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, TG_OP, count(*), tx, ts, who FROM old_rows HAVING count(*) > 0;
        ELSE
            INSERT INTO efir_budget.change_log
                (table_name, operation, rows_affected, txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, TG_OP, count(*), tx, ts, who FROM new_rows HAVING count(*) > 0;
        END IF;

    ELSE
        RAISE EXCEPTION 'efir_budget.capture_change: unknown table kind %', kind;
    END IF;
    RETURN NULL;
END
$fn$
"""

CAPTURE_TRUNCATE_FUNCTION = """
CREATE FUNCTION efir_budget.capture_truncate() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO efir_budget.change_log (table_name, operation, txid, changed_at, db_user)
    VALUES (TG_TABLE_NAME, TG_OP, pg_current_xact_id()::text::bigint, clock_timestamp(), session_user);
    RETURN NULL;
END
$fn$
"""

REFRESH_LOG_COLUMNS = """
ALTER TABLE efir_budget.mv_refresh_log
    ADD COLUMN reflected_change_id bigint,
    ADD COLUMN reflected_snapshot  pg_snapshot
"""

# The tables a materialized view reads, from the catalog PostgreSQL itself keeps
# (pg_depend of each view's rewrite rule, through intermediate views such as v_*),
# so a SQL caller needs no copy of the Python catalog; a test keeps the two equal.
VIEW_SOURCE_TABLES = """
CREATE FUNCTION efir_budget.view_source_tables(view_name text) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE rel(oid) AS (
        SELECT c.oid FROM pg_class c
        WHERE c.relname = $1 AND c.relnamespace = 'efir_budget'::regnamespace
      UNION
        SELECT d.refobjid
        FROM rel
        JOIN pg_rewrite r ON r.ev_class = rel.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rel.oid
    )
    SELECT c.relname::text
    FROM rel JOIN pg_class c ON c.oid = rel.oid
    WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'efir_budget'::regnamespace
    ORDER BY 1
$fn$
"""

# Successive successful refreshes of one view are serialized by the engine's advisory
# lock, so the latest one's snapshot contains every earlier one's.
LAST_REFLECTED_SNAPSHOT = """
CREATE FUNCTION efir_budget.last_reflected_snapshot(view_name text) RETURNS pg_snapshot
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT l.reflected_snapshot
    FROM efir_budget.mv_refresh_log l
    WHERE l.view_name = $1 AND l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
    ORDER BY l.snapshot_at DESC
    LIMIT 1
$fn$
"""

# txid >= xmin is implied by "not visible" (every older transaction had ended) and lets
# the txid index skip everything a refresh already saw.
UNREFLECTED_CHANGES = """
CREATE FUNCTION efir_budget.unreflected_changes(view_name text)
RETURNS TABLE (
    id                bigint,
    table_name        text,
    budget_version_id uuid,
    operation         text,
    rows_affected     bigint,
    old_status        efir_budget.budget_version_status,
    new_status        efir_budget.budget_version_status,
    level_ids         uuid[],
    txid              bigint,
    changed_at        timestamptz,
    txn_rows          bigint
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH s AS MATERIALIZED (SELECT efir_budget.last_reflected_snapshot($1) AS snap)
    SELECT c.id, c.table_name, c.budget_version_id, c.operation, c.rows_affected,
           c.old_status, c.new_status, c.level_ids, c.txid, c.changed_at,
           sum(c.rows_affected) OVER (PARTITION BY c.txid, c.table_name)::bigint
    FROM efir_budget.change_log c
    WHERE c.txid >= coalesce((SELECT pg_snapshot_xmin(s.snap)::text::bigint FROM s), 0)
      AND NOT coalesce(pg_visible_in_snapshot(c.txid::text::xid8, (SELECT s.snap FROM s)), false)
      AND c.table_name IN (SELECT efir_budget.view_source_tables($1))
    ORDER BY c.id
$fn$
"""

OLDEST_UNREFLECTED_CHANGE = """
CREATE FUNCTION efir_budget.oldest_unreflected_change(view_name text) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT min(u.changed_at) FROM efir_budget.unreflected_changes($1) u
$fn$
"""

# Only changes every reading view has reflected go: an unreflected change stays however
# old it is, so the freshness check keeps reporting it. Tables no view reads are fair game.
PRUNE_CHANGE_LOG = """
CREATE FUNCTION efir_budget.prune_change_log(retention interval DEFAULT interval '30 days')
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH views AS (
        SELECT m.matviewname::text AS view_name,
               efir_budget.last_reflected_snapshot(m.matviewname::text) AS snap
        FROM pg_matviews m WHERE m.schemaname = 'efir_budget'
    ), readers AS (
        SELECT v.snap, t.table_name
        FROM views v CROSS JOIN LATERAL efir_budget.view_source_tables(v.view_name) AS t(table_name)
    ), pruned AS (
        DELETE FROM efir_budget.change_log c
        WHERE c.changed_at < clock_timestamp() - $1
          AND NOT EXISTS (
              SELECT 1 FROM readers r
              WHERE r.table_name = c.table_name
                AND (r.snap IS NULL OR NOT pg_visible_in_snapshot(c.txid::text::xid8, r.snap)))
        RETURNING 1
    )
    SELECT count(*) FROM pruned
$fn$
"""

FUNCTIONS = (
    "efir_budget.prune_change_log(interval)",
    "efir_budget.oldest_unreflected_change(text)",
    "efir_budget.unreflected_changes(text)",
    "efir_budget.last_reflected_snapshot(text)",
    "efir_budget.view_source_tables(text)",
    "efir_budget.capture_truncate()",
    "efir_budget.capture_change()",
)

CHANGE_LOG_COLUMNS = {
    "id": "Order of logging (not of commit: a transaction can commit a lower id after a "
    "higher one is visible; use txid and a snapshot to decide what a reader has seen).",
    "table_name": "The source table written (efir_budget schema).",
    "budget_version_id": "The budget version whose rows were written; NULL for tables "
    "without one (reference tables) and for TRUNCATE.",
    "operation": "INSERT, UPDATE, DELETE or TRUNCATE.",
    "rows_affected": "Rows of this version the statement wrote (from the transition tables); "
    "NULL for TRUNCATE.",
    "old_status": "budget_versions only: the status before, NULL if the version did not "
    "exist or was soft-deleted.",
    "new_status": "budget_versions only: the status after, NULL if the version was deleted "
    "or is soft-deleted.",
    "level_ids": "Tables with a level_id: the distinct levels the statement touched in this version.",
    "txid": "Writing transaction (pg_current_xact_id). The change is reflected by a refresh "
    "whose mv_refresh_log.reflected_snapshot has this transaction visible.",
    "changed_at": "clock_timestamp() at the end of the writing statement (not later than its commit).",
    "db_user": "session_user of the writer.",
}

REFRESH_LOG_COMMENTS = {
    "reflected_snapshot": "pg_current_snapshot() taken right before the REFRESH statement "
    "(for a view reading other managed views: the earliest of it and their last recorded "
    "ones): the refresh reflects every change_log row whose txid is visible in it.",
    "reflected_change_id": "Highest change_log.id visible in reflected_snapshot (informational: "
    "a lower id can commit later and is then not reflected).",
}


def upgrade() -> None:
    op.execute(CHANGE_LOG)
    op.execute("CREATE INDEX ix_change_log_txid ON efir_budget.change_log (txid)")
    op.execute("CREATE INDEX ix_change_log_changed_at ON efir_budget.change_log (changed_at)")
    op.execute("REVOKE ALL ON efir_budget.change_log FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.change_log",
        "One row per write statement and budget version on a source table, written by "
        "statement-level triggers (efir_budget.capture_change); read by the refresh sensors "
        "and the freshness checks; pruned by efir_budget.prune_change_log.",
        CHANGE_LOG_COLUMNS,
    ):
        op.execute(statement)

    op.execute(CAPTURE_FUNCTION)
    op.execute(CAPTURE_TRUNCATE_FUNCTION)
    # Triggers fire whoever writes; nobody needs to call these directly.
    op.execute("REVOKE ALL ON FUNCTION efir_budget.capture_change() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION efir_budget.capture_truncate() FROM PUBLIC")
    for table, kind in CAPTURED.items():
        for event, referencing in TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER efir_capture_{event.lower()} AFTER {event} ON efir_budget.{table} "
                f"{referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION efir_budget.capture_change('{kind}')"
            )
        op.execute(
            f"CREATE TRIGGER efir_capture_truncate AFTER TRUNCATE ON efir_budget.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION efir_budget.capture_truncate()"
        )

    op.execute(REFRESH_LOG_COLUMNS)
    for column, text in REFRESH_LOG_COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN efir_budget.mv_refresh_log.{column} IS {literal(text)}")

    for function in (
        VIEW_SOURCE_TABLES,
        LAST_REFLECTED_SNAPSHOT,
        UNREFLECTED_CHANGES,
        OLDEST_UNREFLECTED_CHANGE,
        PRUNE_CHANGE_LOG,
    ):
        op.execute(function)
    op.execute(
        "COMMENT ON FUNCTION efir_budget.oldest_unreflected_change(text) IS "
        "'changed_at of the oldest change to a table the view reads that its last successful "
        "refresh does not reflect; NULL when it is up to date.'"
    )
    op.execute(
        "COMMENT ON FUNCTION efir_budget.unreflected_changes(text) IS "
        "'The change_log rows of the tables the view reads not reflected by its last successful "
        "refresh, with txn_rows (rows of that table the whole transaction wrote) for "
        "classification by efir_pipeline.core.rules.'"
    )
    op.execute(
        "COMMENT ON FUNCTION efir_budget.prune_change_log(interval) IS "
        "'Deletes change_log rows older than the retention that every view reading their table "
        "has reflected; returns how many.'"
    )


def downgrade() -> None:
    for table in CAPTURED:
        for event in (*TRIGGERS, "TRUNCATE"):
            op.execute(
                f"DROP TRIGGER IF EXISTS efir_capture_{event.lower()} ON efir_budget.{table}"
            )
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.execute(
        "ALTER TABLE efir_budget.mv_refresh_log "
        "DROP COLUMN IF EXISTS reflected_snapshot, DROP COLUMN IF EXISTS reflected_change_id"
    )
    op.execute("DROP TABLE IF EXISTS efir_budget.change_log")
