"""Adopting the budget app's own database: one command, every KPI exact, nothing of the app lost.

The database here is built the way the app's models build it (tests/support/budget_app.py,
written independently of our migrations): 56 tables owned by the app's own role, its
enum types, its ``alembic_version``, users with rows, and its two old materialized views
with their fan-out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import errors, sql

from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate, roles
from efir_pipeline.core.db.source_schema import REQUIRED_COLUMNS, REQUIRED_ENUMS
from tests.support import budget_app
from tests.support.commands import run_cli
from tests.support.factories import refresh_all
from tests.support.kpi_oracle import assert_views_match_oracle
from tests.support.random_data import generate
from tests.support.roles import RUN, role_names

OURS = {
    *roles.pipeline_tables(),
    *roles.PIPELINE_VIEWS,
    *catalog.view_names(),
    *roles.catalog_live_views(),
}
"""Every relation the pipeline makes (the design lists them all: a test of test_roles
fails when a migration adds one it does not list)."""


def build_app(url: str, owner: str, reader: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        budget_app.build_budget_app(c, owner=owner, reader=reader)


def snapshot(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as c:
        return budget_app.snapshot_objects(c)


def apps_part(snap: dict) -> dict:
    """A snapshot without the objects adopting adds or replaces: ours, our triggers, and
    the app's two old views with their indexes (kept in replaced_app_views)."""
    out = {}
    for key, value in snap.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if not _ours(k)}
        out[key] = value
    return out


def without(snap: dict, name: str) -> dict:
    return {
        key: {k: v for k, v in value.items() if name not in str(k)}
        if isinstance(value, dict)
        else value
        for key, value in snap.items()
    }


def _ours(key) -> bool:
    text = str(key)
    return any(name in text for name in (*OURS, "efir_capture", "idx_mv_"))


@pytest.fixture(scope="module")
def app_roles(server_url: str, role_cleanup) -> tuple[str, str]:
    with psycopg.connect(server_url, autocommit=True) as c:
        owner, reader = budget_app.create_roles(c, RUN)
    return owner, reader


@pytest.fixture(scope="module")
def app_db(make_database, role_cleanup, app_roles) -> SimpleNamespace:
    """The budget app's database, as it was, then adopted with the command."""
    url = make_database(migrated=False)
    role_cleanup(url, app_roles)
    build_app(url, *app_roles)
    before = snapshot(url)
    adopted = run_cli("db", "adopt", url=url)
    return SimpleNamespace(url=url, before=before, adopted=adopted)


# --------------------------------------------------------------------------- the contract


def test_the_first_revision_builds_exactly_the_apps_tables(make_database, db_url):
    with psycopg.connect(db_url, autocommit=True) as c:
        for table in budget_app.APP_TABLES:
            assert budget_app.read_columns(c, table) == budget_app.SOURCE_COLUMNS[table], table
    app_url = make_database(migrated=False)
    build_app(app_url, "postgres", "postgres")
    assert _constraints(app_url) == _constraints(db_url)


def _constraints(url: str) -> set[tuple[str, str]]:
    """CHECK, UNIQUE, PRIMARY KEY and FOREIGN KEY (among the 16) of the app's tables."""
    with psycopg.connect(url) as c:
        rows = c.execute(
            """SELECT r.relname, pg_get_constraintdef(k.oid)
               FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid
               LEFT JOIN pg_class f ON f.oid = k.confrelid
               WHERE r.relnamespace = 'efir_budget'::regnamespace AND r.relname = ANY(%s)
                 AND (f.oid IS NULL OR f.relname = ANY(%s))""",
            (list(budget_app.APP_TABLES), list(budget_app.APP_TABLES)),
        ).fetchall()
    return set(rows)


def test_what_adopt_checks_is_what_the_views_read(db_url):
    """Every column a view's rule depends on (pg_depend, column by column) is required."""
    with psycopg.connect(db_url) as c:
        used = c.execute(
            """SELECT DISTINCT t.relname::text, a.attname::text
               FROM pg_rewrite r
               JOIN pg_class v ON v.oid = r.ev_class
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                               AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
               JOIN pg_class t ON t.oid = d.refobjid AND t.relkind = 'r'
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
               WHERE v.relnamespace = 'efir_budget'::regnamespace
                 AND t.relname = ANY(%s)""",
            (list(budget_app.APP_TABLES),),
        ).fetchall()
    missing = {(t, col) for t, col in used if col not in REQUIRED_COLUMNS.get(t, {})}
    assert missing == set()
    assert set(REQUIRED_ENUMS) == {"budgetversionstatus", "consolidationcategory"}


# --------------------------------------------------------------------------- adopt


def test_adopt_replaces_the_apps_views_and_touches_nothing_else(app_db, app_roles):
    assert app_db.adopted.returncode == 0, app_db.adopted.stderr
    assert "replaced the budget app's mv_kpi_dashboard" in app_db.adopted.stdout
    assert migrate.current_revision(app_db.url) == migrate.head()
    after = snapshot(app_db.url)
    assert after["alembic_version"] == app_db.before["alembic_version"]  # the app's own
    before, now = apps_part(app_db.before), apps_part(after)
    for key in ("columns", "constraints", "types", "row_counts"):
        assert now[key] == before[key], key
    assert now["relations"] == before["relations"]
    with psycopg.connect(app_db.url) as c:
        kept = c.execute(
            "SELECT view_name, owner, cardinality(indexes) FROM efir_budget.replaced_app_views "
            "ORDER BY 1"
        ).fetchall()
        assert [(v, n) for v, _, n in kept] == [
            ("mv_budget_consolidation", 3),
            ("mv_kpi_dashboard", 2),
        ]
        assert {owner for _, owner, _ in kept} == {app_roles[0]}
        indexes = c.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'efir_budget' "
            "AND indexname LIKE 'idx\\_mv\\_%%'"
        ).fetchone()[0]
        assert indexes == 0  # the app's indexes went with its views


def test_adopt_twice_is_a_no_op(app_db):
    before = snapshot(app_db.url)
    again = run_cli("db", "adopt", url=app_db.url)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert snapshot(app_db.url) == before


def test_whoever_read_the_apps_view_reads_the_new_one(app_db, app_roles):
    owner, reader = app_roles
    with psycopg.connect(app_db.url, autocommit=True) as c:
        for role in (owner, reader):
            for view in ("mv_kpi_dashboard", "mv_budget_consolidation"):
                assert c.execute(
                    "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, f"efir_budget.{view}")
                ).fetchone()[0], (role, view)


def test_a_database_lacking_what_the_views_need_is_refused_and_left_as_it_was(
    make_database, role_cleanup, app_roles
):
    url = make_database(migrated=False)
    role_cleanup(url, app_roles)
    build_app(url, *app_roles)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ALTER TABLE efir_budget.revenue_plans DROP COLUMN deleted_at CASCADE")
        c.execute("ALTER TABLE efir_budget.subjects RENAME COLUMN name_en TO name")
        c.execute("DROP TABLE efir_budget.capex_plans")
    before = snapshot(url)
    result = run_cli("db", "adopt", url=url)
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was changed" in lines[0]
    for item in ("revenue_plans.deleted_at", "subjects.name_en", "capex_plans is missing"):
        assert item in lines[0]
    assert snapshot(url) == before
    assert migrate.current_revision(url) is None


def test_an_empty_database_is_told_to_upgrade(make_database):
    result = run_cli("db", "adopt", url=make_database(migrated=False))
    assert result.returncode == 4
    assert "efir-pipeline db upgrade" in result.stderr


def test_upgrade_on_the_apps_database_is_told_to_adopt(make_database, role_cleanup, app_roles):
    url = make_database(migrated=False)
    role_cleanup(url, app_roles)
    build_app(url, *app_roles)
    result = run_cli("db", "upgrade", url=url)
    assert result.returncode == 4
    assert "efir-pipeline db adopt" in result.stderr


# --------------------------------------------------------------------------- the figures


def test_every_kpi_equals_the_oracle_through_app_style_writes(app_db):
    with psycopg.connect(app_db.url, autocommit=True) as c:
        generate(c, seed=31, n_orgs=2)
        refresh_all(app_db.url)
        assert_views_match_oracle(c)

        # A reference table the app edits: two teacher categories swap codes.
        now = datetime.now(UTC)
        c.execute(
            """UPDATE efir_budget.teacher_categories SET updated_at = %s,
                   code = CASE code WHEN 'AEFE_FUNDED' THEN 'LOCAL' ELSE 'AEFE_FUNDED' END
               WHERE code IN ('AEFE_FUNDED', 'LOCAL')""",
            (now,),
        )
        refresh_all(app_db.url)
        assert_views_match_oracle(c)

        # A row moved from one version to another, as the ORM writes it.
        source, target = c.execute(
            """SELECT r.budget_version_id, v.id FROM efir_budget.revenue_plans r
               JOIN efir_budget.budget_versions v ON v.id <> r.budget_version_id
               WHERE r.deleted_at IS NULL AND v.deleted_at IS NULL
                 AND NOT EXISTS (SELECT FROM efir_budget.revenue_plans o
                                 WHERE o.budget_version_id = v.id
                                   AND o.account_code = r.account_code)
               LIMIT 1"""
        ).fetchone()
        c.execute(
            """UPDATE efir_budget.revenue_plans SET budget_version_id = %s, updated_at = %s
               WHERE id = (SELECT id FROM efir_budget.revenue_plans
                           WHERE budget_version_id = %s AND deleted_at IS NULL LIMIT 1)""",
            (target, now + timedelta(seconds=1), source),
        )
        refresh_all(app_db.url)
        assert_views_match_oracle(c)

        # A version soft-deleted, then restored, by the app's own UPDATEs.
        for deleted_at in (now + timedelta(seconds=2), None):
            c.execute(
                "UPDATE efir_budget.budget_versions SET deleted_at = %s, updated_at = %s "
                "WHERE id = %s",
                (deleted_at, now + timedelta(seconds=3), source),
            )
            refresh_all(app_db.url)
            assert_views_match_oracle(c)


def test_the_apps_old_column_names_carry_the_corrected_figures(app_db):
    with psycopg.connect(app_db.url) as c:
        columns = [
            n
            for (n,) in c.execute(
                """SELECT attname FROM pg_attribute
                   WHERE attrelid = 'efir_budget.mv_kpi_dashboard'::regclass AND attnum > 0"""
            )
        ]
        assert set(budget_app.OLD_KPI_COLUMNS) <= set(columns)
        mismatched = c.execute(
            """SELECT count(*) FROM efir_budget.mv_kpi_dashboard
               WHERE last_updated IS DISTINCT FROM source_updated_at
                  OR avg_class_size_overall IS DISTINCT FROM avg_class_size
                  OR total_atsem_required IS DISTINCT FROM total_atsem
                  OR avg_students_per_class IS DISTINCT FROM students_per_class
                  OR students_per_teaching_hour IS DISTINCT FROM
                     round(total_students / nullif(total_dhg_hours, 0), 4)"""
        ).fetchone()[0]
        assert mismatched == 0


# --------------------------------------------------------------------------- outside the engine


def test_a_refresh_run_outside_the_engine_lands_in_the_history(app_db):
    with psycopg.connect(app_db.url, autocommit=True) as c:
        last = c.execute("SELECT coalesce(max(id), 0) FROM efir_budget.mv_refresh_log").fetchone()[
            0
        ]
        c.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.mv_budget_consolidation")
        rows = c.execute(
            """SELECT view_name, outcome, trigger, refreshed_by, reflected_snapshot IS NOT NULL,
                      row_count = (SELECT count(*) FROM efir_budget.mv_budget_consolidation)
               FROM efir_budget.mv_refresh_log WHERE id > %s""",
            (last,),
        ).fetchall()
        me = c.execute("SELECT session_user").fetchone()[0]
        assert rows == [("mv_budget_consolidation", "success", "outside", me, True, True)]
        (as_of,) = c.execute(
            "SELECT data_as_of FROM efir_budget.kpi_freshness "
            "WHERE view_name = 'mv_budget_consolidation'"
        ).fetchone()
        assert as_of is not None


def test_the_engines_own_refreshes_are_recorded_once(app_db):
    with psycopg.connect(app_db.url, autocommit=True) as c:
        last = c.execute("SELECT coalesce(max(id), 0) FROM efir_budget.mv_refresh_log").fetchone()[
            0
        ]
        refresh_all(app_db.url)
        triggers = [
            t
            for (t,) in c.execute(
                "SELECT trigger FROM efir_budget.mv_refresh_log WHERE id > %s", (last,)
            )
        ]
        assert triggers == ["test"] * len(catalog.VIEWS)


# --------------------------------------------------------------------------- downgrade


def test_downgrade_base_puts_the_apps_views_back_and_loses_nothing(
    make_database, role_cleanup, app_roles
):
    url = make_database(migrated=False)
    role_cleanup(url, app_roles)
    build_app(url, *app_roles)
    before = snapshot(url)
    assert run_cli("db", "adopt", url=url).returncode == 0
    with psycopg.connect(url, autocommit=True) as c:
        version = uuid.uuid4()
        org = c.execute("SELECT id FROM efir_budget.organizations").fetchone()[0]
        c.execute(
            """INSERT INTO efir_budget.budget_versions (id, created_at, updated_at, name,
                   fiscal_year, academic_year, status, is_baseline, organization_id)
               VALUES (%s, now(), now(), 'Written while adopted', 2027, '2026-2027',
                       'working'::efir_budget.budgetversionstatus, false, %s)""",
            (version, org),
        )
        c.execute("DELETE FROM efir_budget.budget_versions WHERE id = %s", (version,))
    down = run_cli("db", "downgrade", "base", url=url)
    assert down.returncode == 0, down.stderr
    after = snapshot(url)
    # definitions, indexes, owner, grants, comments, every row; alembic's empty table aside
    assert without(after, migrate.VERSION_TABLE) == before
    with psycopg.connect(url) as c:
        left = {
            n
            for (n,) in c.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'efir_budget'::regnamespace"
            )
        }
    # Of ours, only alembic's (empty) version table stays; the two views are the app's again.
    assert left & OURS == {"efir_pipeline_revision", "mv_kpi_dashboard", "mv_budget_consolidation"}


# --------------------------------------------------------------------------- roles


@pytest.fixture(scope="module")
def with_roles(app_db, role_cleanup) -> SimpleNamespace:
    names = role_names("adopt_")
    role_cleanup(app_db.url, names)
    script, text = roles.apply(app_db.url, names)
    return SimpleNamespace(names=names, script=script, text=text)


def test_roles_grant_nothing_on_the_apps_other_tables(app_db, with_roles):
    # the 39 other tables, organizations (no view reads it) and the app's alembic_version
    assert "left alone: 41 other relation(s)" in " ".join(with_roles.script.notes)
    statements = "\n".join(
        line for line in with_roles.text.splitlines() if not line.startswith("--")
    )
    for table in (*budget_app.OTHER_TABLES, "organizations", "alembic_version"):
        assert f'"{table}"' not in statements, table
    with psycopg.connect(app_db.url) as c:
        for kind, role in with_roles.names.as_dict().items():
            granted = c.execute(
                """SELECT array_agg(c.relname ORDER BY c.relname) FROM pg_class c
                   WHERE c.relnamespace = 'efir_budget'::regnamespace AND c.relkind = 'r'
                     AND c.relname = ANY(%s)
                     AND (has_table_privilege(%s, c.oid, 'SELECT')
                          OR has_table_privilege(%s, c.oid, 'INSERT'))""",
                (list(budget_app.OTHER_TABLES), role, role),
            ).fetchone()[0]
            assert granted is None, (kind, granted)


def test_the_role_design_holds_on_the_adopted_database(app_db, with_roles):
    with psycopg.connect(app_db.url, autocommit=True) as c:
        assert roles.privilege_matrix(c, with_roles.names) == roles.intended_matrix(
            roles.inspect(c)
        )


def test_the_app_asks_for_a_refresh_by_name_and_the_dashboard_cannot(app_db, with_roles):
    names = with_roles.names
    with psycopg.connect(app_db.url, autocommit=True) as c:
        c.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names.app)))
        request = c.execute("SELECT efir_budget.request_refresh('mv_kpi_dashboard')").fetchone()[0]
        with pytest.raises(errors.UndefinedTable, match="unknown view"):
            c.execute("SELECT efir_budget.request_refresh('users')")
        c.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names.dashboard)))
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute("SELECT efir_budget.request_refresh('mv_kpi_dashboard')")
        c.execute("RESET ROLE")
        logged = c.execute(
            "SELECT id, table_name, operation, db_user = session_user FROM efir_budget.change_log "
            "WHERE operation = 'REQUEST'"
        ).fetchall()
    assert logged == [(request, "mv_kpi_dashboard", "REQUEST", True)]
