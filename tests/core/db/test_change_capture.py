"""Change capture (migration 0003) against a real server: what is logged, what is reflected."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.db import changes, info, migrate
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.errors import MigrationsNotApplied
from efir_pipeline.core.rules import Priority, RefreshRules
from efir_pipeline.core.settings import Settings
from efir_pipeline.core.values import parse_duration
from tests.support import budget_app
from tests.support.factories import (
    add_consolidation,
    add_dhg,
    add_enrollment,
    add_operating_costs,
    add_org,
    add_version,
    add_versions,
    clear_log,
    log_rows,
    refresh_all,
    view_equals_live_query,
)
from tests.support.waiting import wait_for_blocked_refreshes

KPI = catalog.get_view("mv_kpi_dashboard")
CONSOLIDATION = catalog.get_view("mv_budget_consolidation")
# The fifteen tables some view reads (organizations is read by none: not captured).
CAPTURED_TABLES = tuple(t for t in budget_app.APP_TABLES if t != "organizations")


# --------------------------------------------------------------------------- what is logged


def test_every_captured_table_has_the_four_capture_triggers(conn):
    rows = conn.execute(
        """SELECT c.relname::text, count(*) FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid
           WHERE c.relnamespace = 'efir_budget'::regnamespace AND t.tgname LIKE 'efir_capture_%%'
           GROUP BY 1"""
    ).fetchall()
    assert dict(rows) == dict.fromkeys(CAPTURED_TABLES, 4)


def test_a_bulk_insert_of_10000_rows_costs_one_log_row_per_version(conn):
    versions = add_versions(conn, 2)
    clear_log(conn)
    add_operating_costs(conn, versions, per_version=5_000)
    rows = log_rows(conn)
    assert len(rows) == 2
    assert {r["budget_version_id"] for r in rows} == set(versions)
    assert [r["rows_affected"] for r in rows] == [5_000, 5_000]
    assert {r["operation"] for r in rows} == {"INSERT"}
    assert rows[0]["txid"] == rows[1]["txid"]
    assert rows[0]["db_user"]


def test_updates_and_deletes_are_logged_with_rows_from_the_transition_tables(conn):
    versions = add_versions(conn, 2)
    add_operating_costs(conn, versions, per_version=30)
    clear_log(conn)
    conn.execute(
        "UPDATE efir_budget.operating_cost_plans SET amount_sar = amount_sar + 1 "
        "WHERE budget_version_id = %s AND account_code < '60620'",
        (versions[0],),
    )
    conn.execute(
        "DELETE FROM efir_budget.operating_cost_plans WHERE budget_version_id = %s",
        (versions[1],),
    )
    conn.execute("UPDATE efir_budget.operating_cost_plans SET amount_sar = 0 WHERE false")
    rows = log_rows(conn)
    # '6061'..'60619' sort below '60620': accounts 1, 10-19 and 2 -> 12 rows
    assert [(r["operation"], r["budget_version_id"], r["rows_affected"]) for r in rows] == [
        ("UPDATE", versions[0], 12),
        ("DELETE", versions[1], 30),
    ]


def test_an_upsert_logs_its_inserts_and_its_updates(conn):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version, "MATH")
    clear_log(conn)
    conn.execute(
        """INSERT INTO efir_budget.dhg_teacher_requirements
               (id, created_at, updated_at, budget_version_id, subject_id, total_hours_per_week,
                standard_teaching_hours, simple_fte, rounded_fte, hsa_hours)
           SELECT gen_random_uuid(), now(), now(), %s, id, 40, 18, 2.22, 3, 0
           FROM efir_budget.subjects WHERE code IN ('MATH', 'FRAN')
           ON CONFLICT (budget_version_id, subject_id)
           DO UPDATE SET total_hours_per_week = excluded.total_hours_per_week""",
        (version,),
    )
    assert sorted((r["operation"], r["rows_affected"]) for r in log_rows(conn)) == [
        ("INSERT", 1),
        ("UPDATE", 1),
    ]


def test_status_changes_record_the_visible_status_before_and_after(conn):
    org = add_org(conn)
    version = add_version(conn, org)
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'approved' WHERE id = %s", (version,)
    )
    conn.execute(
        "UPDATE efir_budget.budget_versions SET notes = 'checked' WHERE id = %s", (version,)
    )
    conn.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = now() WHERE id = %s", (version,)
    )
    conn.execute("DELETE FROM efir_budget.budget_versions WHERE id = %s", (version,))
    rows = log_rows(conn, "budget_versions")
    assert [(r["operation"], r["old_status"], r["new_status"]) for r in rows] == [
        ("INSERT", None, "working"),
        ("UPDATE", "working", "approved"),
        ("UPDATE", "approved", "approved"),  # an edit, not a status change
        ("UPDATE", "approved", None),  # soft delete: the version disappears
        ("DELETE", None, None),  # was already invisible
    ]
    assert all(r["budget_version_id"] == version for r in rows)


def test_reference_tables_log_one_row_without_a_version(conn):
    conn.execute("UPDATE efir_budget.nationality_types SET name_en = name_en")
    conn.execute("UPDATE efir_budget.subjects SET name_en = name_en WHERE code = 'NOPE'")
    rows = log_rows(conn)
    assert [(r["table_name"], r["budget_version_id"], r["rows_affected"]) for r in rows] == [
        ("nationality_types", None, 3)
    ]


def test_enrollment_rows_record_the_levels_touched_per_version(conn):
    versions = add_versions(conn, 2)
    clear_log(conn)
    add_enrollment(conn, versions, levels=["PS", "MS", "CP"])
    rows = log_rows(conn, "enrollment_plans")
    assert [(r["rows_affected"], r["levels"]) for r in rows] == [(9, 3), (9, 3)]


def test_truncate_is_logged_too(conn):
    (version,) = add_versions(conn, 1)
    add_consolidation(conn, version)
    clear_log(conn)
    conn.execute("TRUNCATE efir_budget.budget_consolidations")
    rows = log_rows(conn)
    assert [(r["table_name"], r["operation"], r["rows_affected"]) for r in rows] == [
        ("budget_consolidations", "TRUNCATE", None)
    ]


def test_an_app_role_without_rights_on_the_log_still_logs_and_cannot_touch_it(conn):
    """The trigger function is SECURITY DEFINER: the app needs no grant, so it can't skip it."""
    role = f"efir_app_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA efir_budget TO {}").format(sql.Identifier(role))
        )
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA efir_budget TO {}"
            ).format(sql.Identifier(role))
        )
        conn.execute(
            sql.SQL("REVOKE ALL ON efir_budget.change_log FROM {}").format(sql.Identifier(role))
        )
        (version,) = add_versions(conn, 1)
        clear_log(conn)
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            add_dhg(conn, version)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute("DELETE FROM efir_budget.change_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute("ALTER TABLE efir_budget.dhg_teacher_requirements DISABLE TRIGGER USER")
        rows = log_rows(conn)
        assert [(r["table_name"], r["rows_affected"]) for r in rows] == [
            ("dhg_teacher_requirements", 1)
        ]
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --------------------------------------------------------------------------- reflected or not


def test_the_database_and_the_catalog_agree_on_what_each_view_reads(conn):
    for view in catalog.VIEWS:
        from_db = [
            t
            for (t,) in conn.execute(
                "SELECT * FROM efir_budget.view_source_tables(%s)", (view.name,)
            ).fetchall()
        ]
        # The tables whose writes the catalog says make the view stale.
        stale_by = [
            t for t in CAPTURED_TABLES if view.name in {v.name for v in catalog.views_reading(t)}
        ]
        assert sorted(from_db) == sorted(stale_by) == sorted(view.source_tables)


def test_a_refresh_records_what_it_reflects_and_clears_the_oldest_unreflected_change(conn, db_url):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version)
    pending = conn.execute(
        "SELECT efir_budget.oldest_unreflected_change(%s)", (KPI.name,)
    ).fetchone()[0]
    first_change = conn.execute(  # the organization written first is not captured
        "SELECT min(changed_at) FROM efir_budget.change_log"
    ).fetchone()[0]
    assert (
        first_change
        == conn.execute(
            "SELECT min(changed_at) FROM efir_budget.change_log WHERE table_name = 'budget_versions'"
        ).fetchone()[0]
    )
    assert pending == first_change
    refresh_all(db_url)
    for view in catalog.VIEWS:
        assert (
            conn.execute(
                "SELECT efir_budget.oldest_unreflected_change(%s)", (view.name,)
            ).fetchone()[0]
            is None
        )
        state = info.view_info(conn, view)
        assert state["oldest_unreflected_change_at"] is None
    snapshot, max_id = conn.execute(
        """SELECT reflected_snapshot::text, reflected_change_id FROM efir_budget.mv_refresh_log
           WHERE view_name = %s ORDER BY id DESC LIMIT 1""",
        (KPI.name,),
    ).fetchone()
    assert changes.is_snapshot(snapshot)
    assert max_id == conn.execute("SELECT max(id) FROM efir_budget.change_log").fetchone()[0]

    add_consolidation(conn, version)  # read by mv_budget_consolidation only
    assert conn.execute(
        "SELECT efir_budget.oldest_unreflected_change(%s)", (CONSOLIDATION.name,)
    ).fetchone()[0]
    assert (
        conn.execute("SELECT efir_budget.oldest_unreflected_change(%s)", (KPI.name,)).fetchone()[0]
        is None
    )


def test_a_change_committed_after_the_refresh_snapshot_is_not_reflected_even_with_a_lower_id(
    conn, db_url
):
    """Ids commit out of order: reflected means "transaction visible in the snapshot"."""
    (version,) = add_versions(conn, 1)
    refresh_all(db_url)
    with psycopg.connect(db_url) as slow:  # a transaction that takes the lower id, commits late
        add_dhg(slow, version, "MATH")
        slow_id = slow.execute("SELECT max(id) FROM efir_budget.change_log").fetchone()[0]
        add_dhg(conn, version, "FRAN")  # a later id, committed at once
        assert refresh_view(KPI, url=db_url).ok  # sees FRAN, not MATH
        slow.commit()
    reflected_id = conn.execute(
        """SELECT reflected_change_id FROM efir_budget.mv_refresh_log
           WHERE view_name = %s ORDER BY id DESC LIMIT 1""",
        (KPI.name,),
    ).fetchone()[0]
    assert slow_id < reflected_id
    pending = changes.unreflected_changes(conn, KPI)
    assert [c.id for c in pending] == [slow_id]
    assert not view_equals_live_query(conn, KPI)  # indeed: MATH is missing from the view
    assert refresh_view(KPI, url=db_url).ok
    assert changes.unreflected_changes(conn, KPI) == []
    assert view_equals_live_query(conn, KPI)


def test_writes_during_a_refresh_are_left_for_the_next_one(conn, db_url):
    """A refresh stalled on a source table took its snapshot before the burst: the burst
    stays unreflected until the next refresh, after which the view equals the live query."""
    (version,) = add_versions(conn, 1)
    refresh_all(db_url)
    add_dhg(conn, version, "MATH")
    box: dict = {}
    with psycopg.connect(db_url) as blocker:
        blocker.execute("LOCK TABLE efir_budget.revenue_plans IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=lambda: box.setdefault("r", refresh_view(KPI, url=db_url)))
        thread.start()
        wait_for_blocked_refreshes(db_url)
        add_operating_costs(conn, [version], per_version=150)  # the burst
        blocker.rollback()
    thread.join(15)
    assert box["r"].ok
    pending = changes.unreflected_changes(conn, KPI)
    assert {c.table_name for c in pending} == {"operating_cost_plans"}
    assert refresh_view(KPI, url=db_url).ok
    assert changes.unreflected_changes(conn, KPI) == []
    assert view_equals_live_query(conn, KPI)


def test_a_view_reading_another_view_reflects_only_what_that_view_did(conn, db_url):
    """A view on a view (``depends_on``) sees a table change only once the upstream view
    has been refreshed: the engine records the earlier of the two snapshots."""
    dependent = dataclasses.replace(
        KPI,
        name="mv_test_dependent",
        live_view="mv_test_dependent",
        depends_on=(KPI.name,),
        strategy="full",
    )
    conn.execute(
        "CREATE MATERIALIZED VIEW efir_budget.mv_test_dependent AS "
        "SELECT budget_version_id, total_revenue_sar FROM efir_budget.mv_kpi_dashboard"
    )
    conn.execute("CREATE UNIQUE INDEX ON efir_budget.mv_test_dependent (budget_version_id)")
    conn.execute("INSERT INTO efir_budget.refresh_state (view_name) VALUES ('mv_test_dependent')")
    try:
        (version,) = add_versions(conn, 1)
        assert refresh_view(dependent, url=db_url).ok  # the upstream has no recorded refresh
        assert len(changes.unreflected_changes(conn, dependent)) == 1  # so nothing is claimed
        assert refresh_view(KPI, url=db_url).ok
        assert refresh_view(dependent, url=db_url).ok
        assert changes.unreflected_changes(conn, dependent) == []

        conn.execute(
            """INSERT INTO efir_budget.revenue_plans
                   (id, created_at, updated_at, budget_version_id, account_code, description,
                    category, amount_sar, is_calculated)
               VALUES (gen_random_uuid(), now(), now(), %s, '70110', 'Tuition', 'tuition', 1000,
                       false)""",
            (version,),
        )
        assert refresh_view(dependent, url=db_url).ok  # reads the stale upstream rows
        assert [c.table_name for c in changes.unreflected_changes(conn, dependent)] == [
            "revenue_plans"
        ]
        assert refresh_view(KPI, url=db_url).ok  # upstream fresh, dependent still stale
        assert len(changes.unreflected_changes(conn, dependent)) == 1
        assert refresh_view(dependent, url=db_url).ok
        assert changes.unreflected_changes(conn, dependent) == []
        assert (
            conn.execute("SELECT total_revenue_sar FROM efir_budget.mv_test_dependent").fetchone()[
                0
            ]
            == 1000
        )
    finally:
        conn.execute("DROP MATERIALIZED VIEW efir_budget.mv_test_dependent")
        conn.execute("DELETE FROM efir_budget.refresh_state WHERE view_name = 'mv_test_dependent'")


def test_oldest_unreflected_change_per_priority_for_the_freshness_check(conn, db_url):
    org = add_org(conn)
    version = add_version(conn, org)
    refresh_all(db_url)
    add_dhg(conn, version)  # medium
    conn.execute(
        "UPDATE efir_budget.budget_versions SET notes = 'n' WHERE id = %s", (version,)
    )  # low
    conn.execute(
        "UPDATE efir_budget.budget_versions SET status = 'submitted' WHERE id = %s", (version,)
    )  # high
    found: dict = {}
    for item in changes.classified_unreflected(conn, KPI, RefreshRules()):
        found.setdefault(item.priority, item)  # oldest first
    assert found[Priority.MEDIUM].change.table_name == "dhg_teacher_requirements"
    assert found[Priority.LOW].change.table_name == "budget_versions"
    assert "status change working -> submitted" in found[Priority.HIGH].reason
    assert found[Priority.MEDIUM].change.changed_at < found[Priority.HIGH].change.changed_at


# --------------------------------------------------------------------------- pruning


def test_pruning_keeps_recent_and_unreflected_changes(conn, db_url):
    (version,) = add_versions(conn, 1)
    add_dhg(conn, version, "MATH")  # read by the KPI view: reflected below
    refresh_all(db_url)
    add_consolidation(conn, version)  # read by the consolidation view: not reflected
    conn.execute(
        "UPDATE efir_budget.change_log SET changed_at = changed_at - %s", (timedelta(days=40),)
    )
    add_dhg(conn, version, "FRAN")  # recent
    # MATH goes; the version's row stays although old and reflected: it is the latest change
    # of budget_versions, whose id is that table's data version in Dagster.
    assert changes.prune(conn, parse_duration("30d")) == 1
    left = [(r["table_name"]) for r in log_rows(conn)]
    assert left == ["budget_versions", "budget_consolidations", "dhg_teacher_requirements"]
    assert changes.prune(conn, Settings().change_log_retention) == 0


# --------------------------------------------------------------------------- migration


def test_downgrade_removes_the_capture_and_upgrade_restores_it(make_database):
    url = make_database()
    migrate.downgrade(url, "0002_refresh_history")
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT to_regclass('efir_budget.change_log')").fetchone()[0] is None
        assert (
            c.execute(
                """SELECT count(*) FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
                   WHERE r.relnamespace = 'efir_budget'::regnamespace AND NOT t.tgisinternal"""
            ).fetchone()[0]
            == 0
        )
        functions = c.execute(
            "SELECT array_agg(proname) FROM pg_proc WHERE pronamespace = 'efir_budget'::regnamespace"
        ).fetchone()[0]
        assert functions == ["cluster_id"]  # 0002's, which stamps the refresh history
        # writes still work without capture; the engine refuses a schema it was not written for
        org = add_org(c)
        add_version(c, org)
    with pytest.raises(MigrationsNotApplied, match="0002_refresh_history"):
        refresh_view(KPI, url=url)
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as c:
        add_version(
            c, c.execute("SELECT id FROM efir_budget.organizations").fetchone()[0], year=2027
        )
        assert [r["table_name"] for r in log_rows(c)] == ["budget_versions"]
