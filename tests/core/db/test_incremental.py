"""Incremental refresh (migration 0004_views) against a real server: always the live rows.

After every kind of write the incremental view can meet, an incremental refresh must
leave ``mv_kpi_dashboard`` equal to ``v_kpi_dashboard`` (EXCEPT ALL both ways) while
recomputing only the versions the write touched (all of them for a change without a
version). Then the cases where time matters: a writer that commits after the refresh
took its snapshot, a manual ``REFRESH ... CONCURRENTLY``, pruning; and the migration
itself: down and up again, it rebuilds the incremental objects exactly (dependents,
comments, owners, grants). Replacing the budget app's own mv_kpi_dashboard, and giving
it back on downgrade, is tests/core/db/test_adopt.py's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.db import changes, incremental, migrate
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult
from efir_pipeline.core.values import Duration
from efir_pipeline.defs.assets import FULL_TAG, full_requested
from efir_pipeline.defs.sensors import versions_tag
from tests.support.random_data import generate

KPI = catalog.get_view("mv_kpi_dashboard")
RATIOS = catalog.get_view("mv_financial_ratios")
PREVIOUS = "0003_change_capture"  # before the views


# --------------------------------------------------------------------------- helpers


def differences(conn: psycopg.Connection, left: str, right: str) -> int:
    """Rows of ``left`` not in ``right`` plus the reverse (EXCEPT ALL: duplicates count)."""
    query = """SELECT (SELECT count(*) FROM (SELECT * FROM {l} EXCEPT ALL SELECT * FROM {r}) a)
                    + (SELECT count(*) FROM (SELECT * FROM {r} EXCEPT ALL SELECT * FROM {l}) b)"""
    return conn.execute(
        sql.SQL(query).format(
            l=sql.Identifier("efir_budget", left), r=sql.Identifier("efir_budget", right)
        )
    ).fetchone()[0]


def assert_live(conn: psycopg.Connection, *, cache: bool = True) -> None:
    """The view holds exactly the live rows (and, right after a sync, so does the cache)."""
    assert differences(conn, "mv_kpi_dashboard", "v_kpi_dashboard") == 0
    if cache:
        assert differences(conn, "mv_kpi_dashboard_cache", "v_kpi_dashboard") == 0


def live_versions(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM efir_budget.budget_versions WHERE deleted_at IS NULL"
    ).fetchone()[0]


def refresh(url: str, *, full: bool = False, view: catalog.ManagedView = KPI) -> RefreshResult:
    result = refresh_view(view, url=url, full=full, trigger="test:incremental")
    assert result.outcome == "success", result.error
    return result


def version_ids(conn: psycopg.Connection, where: str = "deleted_at IS NULL") -> list[uuid.UUID]:
    return [
        v
        for (v,) in conn.execute(
            f"SELECT id FROM efir_budget.budget_versions WHERE {where} ORDER BY id"
        ).fetchall()
    ]


def child_version(conn: psycopg.Connection, table: str) -> uuid.UUID:
    """A live version with live rows in ``table`` (and no child versions)."""
    return conn.execute(
        f"""SELECT t.budget_version_id FROM efir_budget.{table} t
            JOIN efir_budget.budget_versions v ON v.id = t.budget_version_id AND v.deleted_at IS NULL
            WHERE t.deleted_at IS NULL
              AND NOT EXISTS (SELECT FROM efir_budget.budget_versions c WHERE c.parent_version_id = v.id)
            ORDER BY t.budget_version_id LIMIT 1"""
    ).fetchone()[0]


@pytest.fixture
def data(conn: psycopg.Connection, db_url: str) -> psycopg.Connection:
    """Random data, fully refreshed (views and cache equal the live query)."""
    generate(conn, seed=11, n_orgs=2)
    first = refresh(db_url, full=True)
    assert first.mode == "full" and first.versions_recomputed == live_versions(conn)
    assert_live(conn)
    again = refresh(db_url)
    assert (again.mode, again.versions_recomputed) == ("incremental", 0)
    return conn


# --------------------------------------------------------------------------- the edits

# Each edit returns the versions it touches (None: every version); the refresh after it
# must recompute exactly those and leave the view equal to the live query.
Edit = Callable[[psycopg.Connection], "set[uuid.UUID] | None"]


def insert_child(c):
    v = child_version(c, "revenue_plans")
    c.execute(
        """INSERT INTO efir_budget.revenue_plans (id, created_at, updated_at, budget_version_id,
               account_code, description, category, amount_sar, is_calculated)
           VALUES (gen_random_uuid(), now(), now(), %s, '70999', 'test', 'tuition', 1234.56,
                   false)""",
        (v,),
    )
    return {v}


def update_child(c):
    v = child_version(c, "enrollment_plans")
    c.execute(
        """UPDATE efir_budget.enrollment_plans SET student_count = student_count + 7
           WHERE id = (SELECT id FROM efir_budget.enrollment_plans
                       WHERE budget_version_id = %s AND deleted_at IS NULL ORDER BY id LIMIT 1)""",
        (v,),
    )
    return {v}


def soft_delete_child(c):
    v = child_version(c, "capex_plans")
    c.execute(
        "UPDATE efir_budget.capex_plans SET deleted_at = now() WHERE budget_version_id = %s", (v,)
    )
    return {v}


def hard_delete_child(c):
    v = child_version(c, "personnel_cost_plans")
    c.execute("DELETE FROM efir_budget.personnel_cost_plans WHERE budget_version_id = %s", (v,))
    return {v}


def move_child(c):
    """A row moving to another version changes both (the log has both)."""
    a = child_version(c, "operating_cost_plans")
    row, account = c.execute(
        """SELECT id, account_code FROM efir_budget.operating_cost_plans
           WHERE budget_version_id = %s ORDER BY id LIMIT 1""",
        (a,),
    ).fetchone()
    b = c.execute(  # a live version without that account (the key is version, account)
        """SELECT v.id FROM efir_budget.budget_versions v
           WHERE v.deleted_at IS NULL AND v.id <> %s
             AND NOT EXISTS (SELECT FROM efir_budget.operating_cost_plans o
                             WHERE o.budget_version_id = v.id AND o.account_code = %s)
           ORDER BY v.id LIMIT 1""",
        (a, account),
    ).fetchone()[0]
    c.execute(
        "UPDATE efir_budget.operating_cost_plans SET budget_version_id = %s WHERE id = %s",
        (b, row),
    )
    return {a, b}


def status_change(c):
    v = c.execute(
        """SELECT id FROM efir_budget.budget_versions
           WHERE deleted_at IS NULL AND status <> 'superseded' ORDER BY id LIMIT 1"""
    ).fetchone()[0]
    c.execute("UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (v,))
    return {v}


def soft_delete_version(c):
    v = child_version(c, "revenue_plans")
    c.execute("UPDATE efir_budget.budget_versions SET deleted_at = now() WHERE id = %s", (v,))
    return {v}


def hard_delete_version(c):
    """Its rows go by ON DELETE CASCADE (logged by the child tables' own triggers)."""
    v = child_version(c, "class_structures")
    c.execute("DELETE FROM efir_budget.budget_versions WHERE id = %s", (v,))
    return {v}


def restore_version(c):
    v = version_ids(c, "deleted_at IS NOT NULL")[0]
    c.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = NULL, status = 'forecast' WHERE id = %s",
        (v,),
    )
    return {v}


def new_version(c):
    org = c.execute("SELECT id FROM efir_budget.organizations ORDER BY id LIMIT 1").fetchone()[0]
    v = c.execute(
        """INSERT INTO efir_budget.budget_versions
               (id, created_at, updated_at, organization_id, name, fiscal_year, academic_year,
                status, is_baseline)
           VALUES (gen_random_uuid(), now(), now(), %s, 'New forecast', 2030, '2030-2031',
                   'forecast', false) RETURNING id""",
        (org,),
    ).fetchone()[0]
    return {v}


def two_statements_one_transaction(c):
    a = child_version(c, "class_structures")
    b = c.execute(
        """SELECT budget_version_id FROM efir_budget.dhg_teacher_requirements
           WHERE budget_version_id <> %s ORDER BY 1 LIMIT 1""",
        (a,),
    ).fetchone()[0]
    with c.transaction():
        c.execute(
            "UPDATE efir_budget.class_structures SET atsem_count = atsem_count + 1 "
            "WHERE budget_version_id = %s",
            (a,),
        )
        c.execute(
            "UPDATE efir_budget.dhg_teacher_requirements SET hsa_hours = hsa_hours + 1 "
            "WHERE budget_version_id = %s",
            (b,),
        )
    return {a, b}


def reference_name(c):
    c.execute("UPDATE efir_budget.nationality_types SET name_en = name_en WHERE code = 'SAUDI'")
    return None


def reference_code(c):
    """A nationality code read by the view: every version's split changes."""
    c.execute("UPDATE efir_budget.nationality_types SET code = 'SAUDI_X' WHERE code = 'SAUDI'")
    return None


def truncate(c):
    c.execute("TRUNCATE efir_budget.capex_plans")
    return None


def unread_table(c):
    """organizations (not even captured) and budget_consolidations are not read by
    v_kpi_dashboard."""
    c.execute("UPDATE efir_budget.organizations SET name = name || ' (renamed)'")
    c.execute("UPDATE efir_budget.budget_consolidations SET amount_sar = amount_sar + 1")
    return set()


EDITS: dict[str, Edit] = {
    f.__name__: f
    for f in (
        insert_child,
        update_child,
        soft_delete_child,
        hard_delete_child,
        move_child,
        status_change,
        soft_delete_version,
        hard_delete_version,
        restore_version,
        new_version,
        two_statements_one_transaction,
        reference_name,
        reference_code,
        truncate,
        unread_table,
    )
}


@pytest.fixture
def restore_reference(conn: psycopg.Connection) -> Iterator[None]:
    """Reference rows outlive a test (conftest resets only the other tables)."""
    yield
    conn.execute("UPDATE efir_budget.nationality_types SET code = 'SAUDI' WHERE code = 'SAUDI_X'")


@pytest.mark.parametrize("edit", list(EDITS))
def test_incremental_refresh_after_an_edit_equals_the_live_query(
    data, db_url, edit, restore_reference
):
    conn = data
    before = conn.execute(
        "SELECT count(*) FROM efir_budget.mv_kpi_dashboard WHERE french_students + saudi_students > 0"
    ).fetchone()[0]
    touched = EDITS[edit](conn)
    expected = live_versions(conn) if touched is None else len(touched)
    if touched:
        dirty = {v for (v,) in conn.execute("SELECT * FROM efir_budget.v_kpi_dashboard_dirty")}
        assert dirty == touched
    result = refresh(db_url)
    assert (result.mode, result.versions_recomputed) == ("incremental", expected)
    assert result.concurrently
    assert_live(conn)
    if edit == "reference_code":  # the edit did change the rows: not a vacuous equality
        assert before > 0
        assert (
            conn.execute(
                "SELECT count(*) FROM efir_budget.mv_kpi_dashboard WHERE saudi_students > 0"
            ).fetchone()[0]
            == 0
        )
    after = refresh(db_url)
    assert (after.mode, after.versions_recomputed) == ("incremental", 0)
    assert_live(conn)


def test_many_edits_between_refreshes_and_the_history_records_them(data, db_url):
    conn = data
    touched: set = set()
    for edit in (update_child, insert_child, status_change, new_version, move_child):
        touched |= edit(conn)
    result = refresh(db_url)
    assert result.versions_recomputed == len(touched)
    assert_live(conn)
    mode, recomputed = conn.execute(
        "SELECT mode, versions_recomputed FROM efir_budget.mv_refresh_log WHERE id = %s",
        (result.log_id,),
    ).fetchone()
    assert (mode, recomputed) == ("incremental", len(touched))
    # The view reading mv_kpi_dashboard follows (its strategy is full).
    ratios = refresh(db_url, view=RATIOS)
    assert (ratios.mode, ratios.versions_recomputed) == ("full", None)
    assert differences(conn, "mv_financial_ratios", "v_financial_ratios") == 0


def test_full_refresh_recomputes_and_rewrites_everything(data, db_url):
    conn = data
    # A cache row tampered with (a write that skipped the engine): only a full refresh,
    # which trusts nothing, repairs it; an incremental one does not look.
    conn.execute(
        """UPDATE efir_budget.mv_kpi_dashboard_cache SET total_students = -1
           WHERE budget_version_id = (SELECT min(budget_version_id::text)::uuid
                                      FROM efir_budget.mv_kpi_dashboard_cache)"""
    )
    refresh(db_url)
    assert differences(conn, "mv_kpi_dashboard", "v_kpi_dashboard") == 2
    result = refresh(db_url, full=True)
    assert (result.mode, result.versions_recomputed) == ("full", live_versions(conn))
    assert_live(conn)
    assert incremental.state(conn, KPI)["synced_snapshot"] is not None


def test_a_full_request_is_not_coalesced_into_an_incremental_refresh(data, db_url):
    """Two successes after a request mean one started after it: enough for an incremental
    request, not for a full one unless they were full too (the counters, not a clock)."""
    from efir_pipeline.core.db.refresh import _served_since_request

    conn = data
    counters = (
        "SELECT generation, full_generation FROM efir_budget.refresh_state WHERE view_name = %s"
    )
    before = conn.execute(counters, (KPI.name,)).fetchone()
    for _ in range(2):
        update_child(conn)
        assert refresh(db_url).mode == "incremental"
    after = conn.execute(counters, (KPI.name,)).fetchone()
    assert after == (before[0] + 2, before[1])
    assert _served_since_request(SimpleNamespace(full=False, generations=before), after)
    assert not _served_since_request(SimpleNamespace(full=True, generations=before), after)
    assert refresh(db_url, full=True).mode == "full"
    assert conn.execute(counters, (KPI.name,)).fetchone() == (before[0] + 3, before[1] + 1)


def test_cache_rows_of_vanished_or_missing_versions_are_recomputed(data, db_url):
    """Structural drift of the cache (rows deleted, rows of no version) never reaches the view."""
    conn = data
    gone, other = version_ids(conn)[:2]
    conn.execute(
        "DELETE FROM efir_budget.mv_kpi_dashboard_cache WHERE budget_version_id = %s", (gone,)
    )
    conn.execute(  # a copy of another row under a version id that does not exist
        """INSERT INTO efir_budget.mv_kpi_dashboard_cache
           SELECT (jsonb_populate_record(
                       NULL::efir_budget.mv_kpi_dashboard_cache,
                       to_jsonb(k) || jsonb_build_object('budget_version_id', gen_random_uuid()))).*
           FROM efir_budget.mv_kpi_dashboard_cache k WHERE k.budget_version_id = %s""",
        (other,),
    )
    result = refresh(db_url)
    assert result.versions_recomputed == 2
    assert_live(conn)


def test_many_dirty_versions_are_recomputed_in_one_pass(data, db_url, monkeypatch):
    """Past a share of the versions, the whole live query beats one query per version."""
    conn = data
    monkeypatch.setattr(incremental, "RECOMPUTE_ALL_MIN", 1)
    monkeypatch.setattr(incremental, "RECOMPUTE_ALL_FRACTION", 0.0)
    assert len(move_child(conn)) == 2
    result = refresh(db_url)
    assert (result.mode, result.versions_recomputed) == ("incremental", live_versions(conn))
    assert_live(conn)
    assert refresh(db_url).versions_recomputed == 0  # and the state was synced


def test_no_state_row_means_everything_is_recomputed(data, db_url):
    conn = data
    conn.execute("DELETE FROM efir_budget.incremental_state")
    assert conn.execute(
        "SELECT array_agg(budget_version_id) FROM efir_budget.v_kpi_dashboard_dirty"
    ).fetchone()[0] == [None]
    result = refresh(db_url)
    assert result.versions_recomputed == live_versions(conn)
    assert_live(conn)


# --------------------------------------------------------------------------- concurrency


def test_a_writer_committing_after_the_refresh_snapshot_is_picked_up_next_time(data, db_url):
    conn = data
    v = child_version(conn, "revenue_plans")
    with psycopg.connect(db_url) as writer:  # not autocommit: an open transaction
        writer.execute(
            "UPDATE efir_budget.revenue_plans SET amount_sar = amount_sar + 1000 "
            "WHERE budget_version_id = %s",
            (v,),
        )
        during = refresh(db_url)  # the write is not visible: nothing to recompute
        assert during.versions_recomputed == 0
        writer.commit()
    assert differences(conn, "mv_kpi_dashboard", "v_kpi_dashboard") == 2  # stale until ...
    after = refresh(db_url)  # ... the next refresh: the writer was in flight at the sync
    assert after.versions_recomputed == 1
    assert_live(conn)


def wait_for_lock_wait(url: str, pattern: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as c:
        while time.monotonic() < deadline:
            if c.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND query LIKE %s""",
                (pattern,),
            ).fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"no session waiting on a lock with a query like {pattern!r}")


def test_a_commit_between_the_dirty_read_and_the_refresh_is_not_lost(data, db_url):
    """The engine reads the dirty versions (and the snapshot it records) before its REFRESH;
    a write committing in between must be recomputed by this refresh or the next one."""
    conn = data
    v = child_version(conn, "revenue_plans")
    results: list[RefreshResult] = []
    with psycopg.connect(db_url) as blocker, psycopg.connect(db_url) as writer:
        writer.execute(
            "UPDATE efir_budget.revenue_plans SET amount_sar = amount_sar + 1000 "
            "WHERE budget_version_id = %s",
            (v,),
        )
        # The REFRESH (not the dirty read) reads capex_plans: it stalls on this lock.
        blocker.execute("LOCK TABLE efir_budget.capex_plans IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=lambda: results.append(refresh(db_url)))
        thread.start()
        wait_for_lock_wait(db_url, "REFRESH MATERIALIZED VIEW%")
        writer.commit()  # after the dirty read, before the REFRESH runs its query
        blocker.rollback()
        thread.join(30)
    (during,) = results
    assert during.versions_recomputed == 0  # the dirty read did not see the write
    nxt = refresh(db_url)
    assert nxt.versions_recomputed == 1  # not in the recorded snapshot: recomputed now
    assert_live(conn)


def test_readers_are_not_blocked_by_an_incremental_refresh(data, db_url):
    conn = data
    update_child(conn)
    with psycopg.connect(db_url) as reader:
        reader.execute("SELECT count(*) FROM efir_budget.mv_kpi_dashboard").fetchone()
        # The reader's transaction stays open holding ACCESS SHARE; CONCURRENTLY needs
        # only EXCLUSIVE, which does not conflict with it.
        result = refresh(db_url)
        assert result.concurrently
        reader.rollback()
    assert_live(conn)


# --------------------------------------------------------------------------- SQL by hand


def test_a_manual_concurrent_refresh_returns_the_live_rows(data, db_url):
    conn = data
    a = update_child(conn)
    conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.mv_kpi_dashboard")
    assert_live(conn, cache=False)  # right, but not synced:
    b = status_change(conn)
    conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.mv_kpi_dashboard")
    assert_live(conn, cache=False)
    result = refresh(db_url)  # both versions are still dirty for the engine
    assert result.versions_recomputed == len(a | b)
    assert_live(conn)
    conn.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_kpi_dashboard")  # plain works too
    assert_live(conn)


# --------------------------------------------------------------------------- pruning


def test_prune_keeps_changes_the_cache_has_not_synced(data, db_url):
    conn = data
    old = conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
    v = update_child(conn).pop()
    for view in catalog.refresh_order(catalog.VIEWS):  # every reader reflects the change
        refresh(db_url, view=view)
    # ... but the cache is made to look older than it (a sync that did not happen):
    conn.execute(
        "UPDATE efir_budget.incremental_state SET synced_snapshot = %s::pg_snapshot", (old,)
    )
    logged = """SELECT count(*) FROM efir_budget.change_log
                WHERE budget_version_id = %s
                  AND NOT pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"""
    assert conn.execute(logged, (v, old)).fetchone()[0] == 1
    changes.prune(conn, Duration(0))
    assert conn.execute(logged, (v, old)).fetchone()[0] == 1  # kept: it still marks v dirty
    assert refresh(db_url).versions_recomputed == 1
    changes.prune(conn, Duration(0))
    # Gone, or kept only as its table's latest change (the table's data version in Dagster).
    left = conn.execute(
        """SELECT c.id = (SELECT max(n.id) FROM efir_budget.change_log n
                          WHERE n.table_name = c.table_name)
           FROM efir_budget.change_log c
           WHERE c.budget_version_id = %s
             AND NOT pg_visible_in_snapshot(c.txid::text::xid8, %s::pg_snapshot)""",
        (v, old),
    ).fetchall()
    assert left in ([], [(True,)])


def test_source_tables_are_the_captured_tables_only(conn):
    tables = {
        t for (t,) in conn.execute("SELECT efir_budget.view_source_tables('mv_kpi_dashboard')")
    }
    assert tables == set(KPI.source_tables)
    assert not {"change_log", "incremental_state", "mv_kpi_dashboard_cache"} & tables


# --------------------------------------------------------------------------- the migration

INCREMENTAL_OBJECTS = (
    "mv_kpi_dashboard",
    "mv_kpi_dashboard_cache",
    "v_kpi_dashboard_incremental",
    "v_kpi_dashboard_dirty",
    "mv_financial_ratios",
    "v_financial_ratios",
)


def _surroundings(url: str) -> dict:
    """What the migration builds around the incremental view: owners, grants, comments,
    indexes, columns, population, and the state row and function."""
    with psycopg.connect(url) as c:
        rows = c.execute(
            """SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
                      (SELECT array_agg(format('%%s:%%s', coalesce(nullif(a.grantee::regrole::text, '-'),
                                                                 'PUBLIC'), a.privilege_type)
                                        ORDER BY 1)
                         FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner),
                      obj_description(c.oid, 'pg_class'),
                      (SELECT array_agg(pg_get_indexdef(i.indexrelid) || ' -- ' ||
                                        coalesce(obj_description(i.indexrelid, 'pg_class'), '')
                                        ORDER BY 1)
                         FROM pg_index i WHERE i.indrelid = c.oid),
                      (SELECT array_agg(a.attname || ': ' || coalesce(col_description(c.oid, a.attnum), '')
                                        ORDER BY a.attnum)
                         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                          AND NOT a.attisdropped),
                      (SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                        ORDER BY a.attnum)
                         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                          AND NOT a.attisdropped),
                      c.relispopulated
               FROM pg_class c
               WHERE c.relnamespace = 'efir_budget'::regnamespace AND c.relname = ANY(%s)
               ORDER BY 1""",
            (list(INCREMENTAL_OBJECTS),),
        ).fetchall()
        state = c.execute(
            "SELECT view_name, synced_snapshot::text FROM efir_budget.incremental_state"
        ).fetchall()
        function = c.execute(
            "SELECT to_regprocedure('efir_budget.unsynced_versions(text, text)')::text"
        ).fetchone()[0]
    return {"relations": {r[0]: r[1:] for r in rows}, "state": state, "function": function}


def test_the_migration_removes_and_rebuilds_the_incremental_objects_both_ways(make_database):
    url = make_database()
    built = _surroundings(url)
    assert set(built["relations"]) == set(INCREMENTAL_OBJECTS)
    assert built["state"] == [("mv_kpi_dashboard", None)] and built["function"]
    with psycopg.connect(url) as c:
        definition = c.execute("SELECT pg_get_viewdef('efir_budget.mv_kpi_dashboard')").fetchone()[
            0
        ]
        assert "v_kpi_dashboard_incremental" in definition
        # The dependent view reads the materialized one, not the live query.
        assert (
            "mv_kpi_dashboard"
            in c.execute("SELECT pg_get_viewdef('efir_budget.v_financial_ratios')").fetchone()[0]
        )

    migrate.downgrade(url, PREVIOUS)
    gone = _surroundings(url)
    assert gone == {"relations": {}, "state": [], "function": None}

    migrate.upgrade(url)
    assert _surroundings(url) == built


def test_the_planner_estimates_stay_sane(data):
    """Per-table aggregates filtered on one version are each estimated at their input
    rows, and joined without a clause: unguarded, a version was estimated at the product
    (10^11 rows at network scale), and a manual REFRESH JIT-compiled for seconds."""
    plan = data.execute(
        "EXPLAIN (FORMAT JSON) SELECT * FROM efir_budget.v_kpi_dashboard_incremental"
    ).fetchone()[0][0]["Plan"]
    assert plan["Plan Rows"] < 100 * live_versions(data) + 10_000
    assert plan["Total Cost"] < 500_000  # jit_optimize_above_cost's default


def test_the_live_query_and_the_view_have_the_same_columns(conn):
    columns = """SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)
                 FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"""
    live = conn.execute(columns, ("efir_budget.v_kpi_dashboard",)).fetchone()[0]
    for relation in ("mv_kpi_dashboard", "mv_kpi_dashboard_cache", "v_kpi_dashboard_incremental"):
        assert conn.execute(columns, (f"efir_budget.{relation}",)).fetchone()[0] == live, relation


# --------------------------------------------------------------------------- wiring


def test_catalog_strategies():
    assert KPI.strategy == "per_version" and KPI.incremental
    assert (KPI.cache_table, KPI.incremental_view, KPI.dirty_view) == (
        "mv_kpi_dashboard_cache",
        "v_kpi_dashboard_incremental",
        "v_kpi_dashboard_dirty",
    )
    assert all(v.strategy == "full" for v in catalog.VIEWS if v is not KPI)
    with pytest.raises(ValueError, match="strategy"):
        catalog.ManagedView("mv_x", "v_x", ("id",), (), "x", strategy="sometimes")
    with pytest.raises(ValueError, match="version_column"):
        catalog.ManagedView(
            "mv_x", "v_x", ("id",), (), "x", version_column=None, strategy="per_version"
        )


def test_run_tags():
    assert full_requested({FULL_TAG: "true"}) and not full_requested({})
    assert versions_tag(["a", "b"], False) == "2: a,b"
    assert versions_tag(["a"], True) == "all"
    long = versions_tag([str(uuid.uuid4()) for _ in range(40)], False)
    assert long.startswith("40: ") and long.endswith("...") and len(long) <= 200
    from efir_pipeline.defs.schedules import refresh_all_views_nightly

    assert refresh_all_views_nightly.tags[FULL_TAG] == "true"


def test_a_dagster_run_tagged_full_recomputes_everything(data, db_url):
    import dagster as dg

    from efir_pipeline.defs import assets
    from efir_pipeline.defs.resources import PostgresResource

    def materialize(**kwargs) -> dict:
        result = dg.materialize(
            [*assets.SOURCE_SPECS, assets.VIEW_ASSET_BY_NAME[KPI.name]],
            instance=dg.DagsterInstance.ephemeral(),
            resources={"postgres": PostgresResource(database_url=db_url)},
            **kwargs,
        )
        assert result.success
        (event,) = result.asset_materializations_for_node(KPI.name)
        return {k: v.value for k, v in event.metadata.items()}

    update_child(data)
    incremental_run = materialize()
    assert (incremental_run["mode"], incremental_run["versions_recomputed"]) == ("incremental", 1)
    full_run = materialize(tags={FULL_TAG: "true"})
    assert (full_run["mode"], full_run["versions_recomputed"]) == ("full", live_versions(data))
    assert_live(data)
