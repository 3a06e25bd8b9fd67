"""Change capture: every write to a table the views read leaves one row per statement
and version, and "reflected" is decided in one place.

Why in the database: the budget app has several write paths (screens, imports, its
ORM, scripts), and a trigger is the one place none of them can skip. Why statement
level with transition tables: a bulk import of 10,000 rows costs one log row per
(statement, version), not 10,000 row triggers. Only the tables some view reads are
captured (not ``organizations``, none of the app's other tables).

What is logged, in ``efir_budget.change_log``:

- INSERT / UPDATE / DELETE through statement-level AFTER triggers (PostgreSQL allows
  transition tables only on single-event triggers, hence three per table), and
  TRUNCATE (one row, no version);
- ``budget_versions``: one row per version written, with the *visible* status before
  and after (NULL while the version does not exist or is soft-deleted), so creating,
  deleting or restoring a version reads as a status change: it adds or removes a
  dashboard row;
- tables with a ``level_id``: the distinct levels the statement touched per version;
- ``REQUEST``: a refresh asked for by name through ``efir_budget.request_refresh``
  (the app's old "refresh" endpoint, in SQL); ``table_name`` then names the view.

No priority is stored: thresholds are settings (``efir_pipeline.core.rules``),
applied when the log is read, so the log keeps facts.

"Reflected", once (``efir_budget.is_reflected``): a change is reflected by a refresh
when its transaction is visible in the snapshot the refresh recorded right before its
REFRESH statement (``mv_refresh_log.reflected_snapshot``). Change ids are no watermark:
ids are drawn when a statement runs and become visible at commit, so a lower id can
appear after a higher one was read. Every reader of the log (the functions below, the
sensors, the incremental refresh) goes through that one function.

Transaction ids compare only within the cluster that issued them, so each change and
each stored snapshot carries its origin (``efir_budget.cluster_id()``). After a
pg_dump is restored into another cluster, a change of a different origin than the
snapshot is reflected exactly when the snapshot was taken in the current cluster: the
restored rows were all committed before the dump, so every snapshot taken since sees
them, and a snapshot from before the restore saw none of the new ones. The rule errs
towards "not reflected yet" (one refresh too many), never the other way.

Revision ID: 0003_change_capture
Revises: 0002_refresh_history
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements, literal

revision: str = "0003_change_capture"
down_revision: str | None = "0002_refresh_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How each table some view reads is captured. version: budget_versions itself;
# reference: no budget version; levels: a child with a level_id; child: any other child.
CAPTURED: dict[str, str] = {
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
        CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REQUEST')),
    rows_affected     bigint
        CONSTRAINT ck_change_log_rows_affected
        CHECK ((operation = 'TRUNCATE') = (rows_affected IS NULL)),
    old_status        text,
    new_status        text,
    level_ids         uuid[],
    txid              bigint NOT NULL,
    origin            bigint NOT NULL DEFAULT efir_budget.cluster_id(),
    changed_at        timestamptz NOT NULL,
    db_user           text NOT NULL
)
"""

CHANGE_LOG_COLUMNS = {
    "id": "Order of logging (not of commit: a transaction can commit a lower id after a "
    "higher one is visible; use txid and a snapshot to decide what a reader has seen).",
    "table_name": "The source table written; for operation REQUEST, the view whose refresh "
    "was requested.",
    "budget_version_id": "The budget version whose rows were written; NULL for tables "
    "without one (reference tables), for TRUNCATE and for REQUEST.",
    "operation": "INSERT, UPDATE, DELETE, TRUNCATE, or REQUEST (efir_budget.request_refresh).",
    "rows_affected": "Rows of this version the statement wrote (from the transition tables); "
    "NULL for TRUNCATE, 0 for REQUEST.",
    "old_status": "budget_versions only: the status before, NULL if the version did not "
    "exist or was soft-deleted.",
    "new_status": "budget_versions only: the status after, NULL if the version was deleted "
    "or is soft-deleted.",
    "level_ids": "Tables with a level_id: the distinct levels the statement touched in this "
    "version.",
    "txid": "Writing transaction (pg_current_xact_id). The change is reflected by a refresh "
    "whose mv_refresh_log.reflected_snapshot has this transaction visible (is_reflected).",
    "origin": "efir_budget.cluster_id() of the cluster txid was issued by (rows restored "
    "from another cluster keep theirs).",
    "changed_at": "clock_timestamp() at the end of the writing statement (not later than its "
    "commit).",
    "db_user": "session_user of the writer.",
}

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
                   CASE WHEN n.deleted_at IS NULL THEN n.status::text END, tx, ts, who
            FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, old_status, new_status,
                 txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, coalesce(n.id, o.id), TG_OP, 1,
                   CASE WHEN o.deleted_at IS NULL THEN o.status::text END,
                   CASE WHEN n.deleted_at IS NULL THEN n.status::text END, tx, ts, who
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id;
        ELSE
            INSERT INTO efir_budget.change_log
                (table_name, budget_version_id, operation, rows_affected, old_status, new_status,
                 txid, changed_at, db_user)
            SELECT TG_TABLE_NAME, o.id, TG_OP, 1,
                   CASE WHEN o.deleted_at IS NULL THEN o.status::text END, NULL, tx, ts, who
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

# The one rule every reader of the log uses (an inlinable SQL function).
IS_REFLECTED = """
CREATE FUNCTION efir_budget.is_reflected(
    txid bigint, origin bigint, snapshot pg_snapshot, snapshot_origin bigint
) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE
    WHEN snapshot IS NULL THEN false
    WHEN origin = snapshot_origin THEN coalesce(pg_visible_in_snapshot(txid::text::xid8, snapshot), false)
    ELSE coalesce(snapshot_origin = efir_budget.cluster_id(), false)
END
"""

# The lowest txid a snapshot leaves undecided, when comparing by txid is valid: rows of
# the current cluster below it are visible, rows of another one reflected (the snapshot
# being current). 0 (scan everything) for a snapshot of another cluster or none.
TXID_FLOOR = """
CREATE FUNCTION efir_budget.txid_floor(snapshot pg_snapshot, snapshot_origin bigint)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN snapshot_origin = efir_budget.cluster_id()
            THEN pg_snapshot_xmin(snapshot)::text::bigint ELSE 0 END
"""

# Sources are the captured tables pg_depend reaches from the view (through plain views);
# the pipeline's own tables a view reads (cache, incremental state, change log) are not.
VIEW_SOURCE_TABLES = r"""
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
      AND EXISTS (SELECT FROM pg_trigger t
                  WHERE t.tgrelid = c.oid AND t.tgname LIKE 'efir\_capture\_%')
    ORDER BY 1
$fn$
"""

# The managed views a view reads directly or through plain views (not through another
# materialized view: that one is its own refresh step).
UPSTREAM_VIEWS = """
CREATE FUNCTION efir_budget.upstream_views(view_name text) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE walk(oid, first) AS (
        SELECT c.oid, true FROM pg_class c
        WHERE c.relname = $1 AND c.relnamespace = 'efir_budget'::regnamespace
      UNION
        SELECT d.refobjid, false
        FROM walk w
        JOIN pg_class wc ON wc.oid = w.oid
        JOIN pg_rewrite r ON r.ev_class = w.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> w.oid
        WHERE w.first OR wc.relkind = 'v'
    )
    SELECT DISTINCT c.relname::text
    FROM walk w JOIN pg_class c ON c.oid = w.oid
    WHERE NOT w.first AND c.relkind = 'm' AND c.relnamespace = 'efir_budget'::regnamespace
$fn$
"""

# Successive successful refreshes of one view are serialized, so the latest one's
# snapshot contains every earlier one's.
LAST_REFLECTION = """
CREATE FUNCTION efir_budget.last_reflection(
    view_name text, OUT reflected_snapshot pg_snapshot, OUT snapshot_origin bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT l.reflected_snapshot, l.snapshot_origin
    FROM efir_budget.mv_refresh_log l
    WHERE l.view_name = $1 AND l.outcome = 'success' AND l.reflected_snapshot IS NOT NULL
    ORDER BY l.snapshot_at DESC, l.id DESC
    LIMIT 1
$fn$
"""

# What a refresh reflects whose own snapshot is ``own`` (NULL: one taken now, right
# before the REFRESH statement): that snapshot, or for a view reading other managed
# views the earliest of it and their last recorded ones (it reflects their tables only
# as far as their last refresh did; snapshots taken at different times are nested, and
# one from before a restore into this cluster is earlier than any taken here).
# NULL when an upstream view was never refreshed: nothing is claimed.
REFLECTION_POINT = """
CREATE FUNCTION efir_budget.reflection_point(
    view_name text, own pg_snapshot DEFAULT NULL,
    OUT reflected_snapshot pg_snapshot, OUT snapshot_origin bigint,
    OUT reflected_change_id bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH snaps AS (
        SELECT coalesce($2, pg_current_snapshot()) AS s, efir_budget.cluster_id() AS origin
        UNION ALL
        SELECT r.reflected_snapshot, r.snapshot_origin
        FROM efir_budget.upstream_views($1) u, efir_budget.last_reflection(u) r
    ), chosen AS (
        SELECT e.s, e.origin
        FROM (SELECT bool_and(s IS NOT NULL) AS complete FROM snaps) k,
             LATERAL (SELECT s, origin FROM snaps
                      ORDER BY origin = efir_budget.cluster_id(), pg_snapshot_xmax(s),
                               (SELECT count(*) FROM pg_snapshot_xip(s)) DESC
                      LIMIT 1) e
        WHERE k.complete
    )
    SELECT c.s, c.origin,
           (SELECT l.id FROM efir_budget.change_log l
            WHERE efir_budget.is_reflected(l.txid, l.origin, c.s, c.origin)
            ORDER BY l.id DESC LIMIT 1)
    FROM (SELECT 1) one LEFT JOIN chosen c ON true
$fn$
"""

# The changes of a view not reflected by its last success nor by the caller's own
# snapshot ``requested`` (a sensor's "already asked for": NULL for none), with the rows
# of their table their whole transaction wrote. txid >= xmin is implied by "not
# visible" (every older transaction had ended) and lets the txid index skip the rest.
OUTSTANDING_CHANGES = """
CREATE FUNCTION efir_budget.outstanding_changes(
    view_name text, requested pg_snapshot, requested_origin bigint)
RETURNS TABLE (
    id                bigint,
    table_name        text,
    budget_version_id uuid,
    operation         text,
    rows_affected     bigint,
    old_status        text,
    new_status        text,
    level_ids         uuid[],
    txid              bigint,
    changed_at        timestamptz,
    txn_rows          bigint
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH s AS MATERIALIZED (
        SELECT r.reflected_snapshot AS reflected, r.snapshot_origin AS reflected_origin,
               $2 AS requested, $3 AS requested_origin
        FROM efir_budget.last_reflection($1) r
    )
    SELECT c.id, c.table_name, c.budget_version_id, c.operation, c.rows_affected,
           c.old_status, c.new_status, c.level_ids, c.txid, c.changed_at,
           sum(c.rows_affected) OVER (PARTITION BY c.txid, c.table_name)::bigint
    FROM efir_budget.change_log c, s
    WHERE c.txid >= greatest(coalesce(efir_budget.txid_floor(s.reflected, s.reflected_origin), 0),
                             coalesce(efir_budget.txid_floor(s.requested, s.requested_origin), 0))
      AND NOT efir_budget.is_reflected(c.txid, c.origin, s.reflected, s.reflected_origin)
      AND NOT efir_budget.is_reflected(c.txid, c.origin, s.requested, s.requested_origin)
      AND (c.table_name IN (SELECT efir_budget.view_source_tables($1))
           OR (c.operation = 'REQUEST' AND c.table_name = $1))
    ORDER BY c.id
$fn$
"""

OLDEST_UNREFLECTED_CHANGE = """
CREATE FUNCTION efir_budget.oldest_unreflected_change(view_name text) RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT min(u.changed_at) FROM efir_budget.outstanding_changes($1, NULL, NULL) u
$fn$
"""

# The app's old "refresh this view" endpoint, in SQL: a request is a change of the view
# itself, served by the high-priority sensor like any other. Only a managed view (a
# materialized view of this schema) can be named; anything else is refused before any
# row is written.
REQUEST_REFRESH = """
CREATE FUNCTION efir_budget.request_refresh(view_name text) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    requested bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_matviews m
                   WHERE m.schemaname = 'efir_budget' AND m.matviewname = view_name) THEN
        RAISE EXCEPTION 'unknown view %', quote_literal(view_name)
            USING ERRCODE = 'undefined_table',
                  HINT = 'known views: ' || (SELECT string_agg(m.matviewname, ', ' ORDER BY 1)
                                             FROM pg_matviews m
                                             WHERE m.schemaname = 'efir_budget');
    END IF;
    INSERT INTO efir_budget.change_log
        (table_name, operation, rows_affected, txid, changed_at, db_user)
    VALUES (view_name, 'REQUEST', 0, pg_current_xact_id()::text::bigint, clock_timestamp(),
            session_user)
    RETURNING id INTO requested;
    RETURN requested;
END
$fn$
"""

INCREMENTAL_STATE = """
CREATE TABLE efir_budget.incremental_state (
    view_name       text PRIMARY KEY,
    synced_snapshot pg_snapshot,
    synced_origin   bigint,
    synced_at       timestamptz,
    CONSTRAINT ck_incremental_state_snapshot_has_origin
        CHECK ((synced_snapshot IS NULL) = (synced_origin IS NULL))
)
"""

INCREMENTAL_STATE_COLUMNS = {
    "view_name": "A managed materialized view with strategy per_version, e.g. mv_kpi_dashboard.",
    "synced_snapshot": "pg_current_snapshot() taken right before the REFRESH its cache was "
    "last synced from: every change_log row whose transaction is visible in it is in the "
    "cache. NULL: nothing is trusted, the next refresh recomputes every version.",
    "synced_origin": "efir_budget.cluster_id() of the cluster synced_snapshot was taken in.",
    "synced_at": "When the cache was last synced (the refresh transaction's clock).",
}

# Only changes every reading view has reflected, and every incremental cache reading
# their table has synced, go: an unreflected change stays however old it is, so the
# freshness check keeps reporting it. Requests go once their view reflects them. The
# latest change of each table stays too: its id is the table's data version in Dagster,
# which pruning must not change.
PRUNE_CHANGE_LOG = """
CREATE FUNCTION efir_budget.prune_change_log(retention interval DEFAULT interval '30 days')
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH views AS (
        SELECT m.matviewname::text AS view_name, r.reflected_snapshot AS snap,
               r.snapshot_origin AS origin
        FROM pg_matviews m, efir_budget.last_reflection(m.matviewname::text) r
        WHERE m.schemaname = 'efir_budget'
    ), readers AS (
        SELECT v.snap, v.origin, t.table_name
        FROM views v CROSS JOIN LATERAL efir_budget.view_source_tables(v.view_name) AS t(table_name)
        UNION ALL
        SELECT v.snap, v.origin, v.view_name FROM views v
    ), synced AS (
        SELECT s.synced_snapshot AS snap, s.synced_origin AS origin, t.table_name
        FROM efir_budget.incremental_state s
        CROSS JOIN LATERAL efir_budget.view_source_tables(s.view_name) AS t(table_name)
        WHERE s.synced_snapshot IS NOT NULL
    ), pruned AS (
        DELETE FROM efir_budget.change_log c
        WHERE c.changed_at < clock_timestamp() - $1
          AND c.id < (SELECT max(n.id) FROM efir_budget.change_log n
                      WHERE n.table_name = c.table_name)
          AND NOT EXISTS (SELECT FROM readers r
                          WHERE r.table_name = c.table_name
                            AND NOT efir_budget.is_reflected(c.txid, c.origin, r.snap, r.origin))
          AND NOT EXISTS (SELECT FROM synced s
                          WHERE s.table_name = c.table_name
                            AND NOT efir_budget.is_reflected(c.txid, c.origin, s.snap, s.origin))
        RETURNING 1
    )
    SELECT count(*) FROM pruned
$fn$
"""

FUNCTIONS: dict[str, tuple[str, str]] = {
    "is_reflected(bigint, bigint, pg_snapshot, bigint)": (
        IS_REFLECTED,
        "Whether a change of transaction txid (issued by cluster origin) is reflected by a "
        "refresh that recorded snapshot (taken in cluster snapshot_origin): its transaction "
        "is visible in it; across clusters, whether the snapshot is this cluster's. False "
        "for no snapshot. The one rule.",
    ),
    "txid_floor(pg_snapshot, bigint)": (
        TXID_FLOOR,
        "The txid below which every change is reflected by the snapshot (its xmin when it "
        "is this cluster's, else 0): a bound for the change_log txid index.",
    ),
    "view_source_tables(text)": (
        VIEW_SOURCE_TABLES,
        "The source tables a view reads, directly or through other views: the captured "
        "tables (efir_capture_* triggers) pg_depend reaches from it.",
    ),
    "upstream_views(text)": (
        UPSTREAM_VIEWS,
        "The managed materialized views a view reads, directly or through plain views.",
    ),
    "last_reflection(text)": (
        LAST_REFLECTION,
        "reflected_snapshot and snapshot_origin of the view's last successful refresh.",
    ),
    "reflection_point(text, pg_snapshot)": (
        REFLECTION_POINT,
        "What a refresh of the view reflects whose own snapshot is own (default: now): that "
        "snapshot (the earliest of it and its upstream views' last ones), its origin, and "
        "the highest change id in it.",
    ),
    "outstanding_changes(text, pg_snapshot, bigint)": (
        OUTSTANDING_CHANGES,
        "The change_log rows of a view not reflected by its last successful refresh nor by "
        "the given snapshot (of the given origin), with txn_rows (rows of that table the whole "
        "transaction wrote) for the priority rules.",
    ),
    "oldest_unreflected_change(text)": (
        OLDEST_UNREFLECTED_CHANGE,
        "changed_at of the oldest change a view does not reflect yet; NULL when up to date.",
    ),
    "request_refresh(text)": (
        REQUEST_REFRESH,
        "Ask for a refresh of a managed view by name (the budget app's old refresh "
        "endpoint): logs a REQUEST change the high-priority sensor serves within a tick. "
        "Returns its change_log id; an unknown name is refused and nothing is logged.",
    ),
    "prune_change_log(interval)": (
        PRUNE_CHANGE_LOG,
        "Deletes change_log rows older than the retention that every view reading their "
        "table has reflected and every incremental cache has synced; returns how many.",
    ),
}


def upgrade() -> None:
    op.execute(CHANGE_LOG)
    op.execute("CREATE INDEX ix_change_log_txid ON efir_budget.change_log (txid)")
    op.execute("CREATE INDEX ix_change_log_changed_at ON efir_budget.change_log (changed_at)")
    # A table's latest change (its data version in Dagster) is one backward index step.
    op.execute("CREATE INDEX ix_change_log_table_id ON efir_budget.change_log (table_name, id)")
    op.execute("REVOKE ALL ON efir_budget.change_log FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.change_log",
        "One row per write statement and budget version on a table a view reads, written by "
        "statement-level triggers (efir_budget.capture_change), and one per refresh request; "
        "read by the sensors and the freshness checks; pruned by efir_budget.prune_change_log.",
        CHANGE_LOG_COLUMNS,
    ):
        op.execute(statement)
    op.execute(INCREMENTAL_STATE)
    op.execute("REVOKE ALL ON efir_budget.incremental_state FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.incremental_state",
        "Per incremental view (catalog strategy per_version): the snapshot its cache was last "
        "synced at. Written only by the refresh engine, in the refresh's transaction.",
        INCREMENTAL_STATE_COLUMNS,
    ):
        op.execute(statement)

    op.execute(CAPTURE_FUNCTION)
    op.execute(CAPTURE_TRUNCATE_FUNCTION)
    for function in ("capture_change()", "capture_truncate()"):
        # Triggers fire whoever writes; nobody needs to call these directly.
        op.execute(f"REVOKE ALL ON FUNCTION efir_budget.{function} FROM PUBLIC")
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

    for signature, (definition, comment) in FUNCTIONS.items():
        op.execute(definition)
        op.execute(f"COMMENT ON FUNCTION efir_budget.{signature} IS {literal(comment)}")
    op.execute("REVOKE ALL ON FUNCTION efir_budget.request_refresh(text) FROM PUBLIC")


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION efir_budget.{signature}")
    for table in CAPTURED:
        for event in (*TRIGGERS, "TRUNCATE"):
            op.execute(f"DROP TRIGGER efir_capture_{event.lower()} ON efir_budget.{table}")
    op.execute("DROP FUNCTION efir_budget.capture_truncate()")
    op.execute("DROP FUNCTION efir_budget.capture_change()")
    op.execute("DROP TABLE efir_budget.incremental_state")
    op.execute("DROP TABLE efir_budget.change_log")
