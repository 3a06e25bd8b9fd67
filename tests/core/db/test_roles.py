"""Least privilege, proven by logging in as each role that ``efir-pipeline db roles`` sets up.

Roles are cluster-wide, unlike the scratch databases: every name here is unique to
the test run (``efir_t_<random>_*``) and every role is dropped at the end, after
DROP OWNED in each database it touched.

The module's database is migrated, then ``db roles`` runs twice (idempotent); the app
role loads a random dataset (its writes must reach the change log), and the pipeline
role refreshes every view through the refresh engine. The tests then try, as each
role, what it may and may not do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import errors, sql

from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA
from efir_pipeline.core.db import checks as health
from efir_pipeline.core.db import migrate, roles
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.roles import RoleNames
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.settings import Settings
from tests.support.commands import run_cli
from tests.support.random_data import generate
from tests.support.roles import RUN, login_url, role_names, set_passwords

SOURCE_TABLES = ("budget_versions", "enrollment_plans", "revenue_plans")
PIPELINE_TABLES = ("mv_refresh_log", "change_log", "alert_outbox")
DENIED = errors.InsufficientPrivilege
VIEWS = catalog.refresh_order(catalog.VIEWS)


@pytest.fixture(scope="module")
def setup(make_database, role_cleanup) -> SimpleNamespace:
    """Migrated database, ``db roles`` twice, app data written as the app, views refreshed."""
    names = role_names("")
    url = make_database()
    role_cleanup(url, names)
    first, _ = roles.apply(url, names)
    second, _ = roles.apply(url, names)
    set_passwords(url, names)
    with psycopg.connect(url, autocommit=True) as c:
        # The app's own right on its organizations (no view reads them: not ours to grant).
        c.execute(
            sql.SQL("GRANT SELECT, INSERT ON efir_budget.organizations TO {}").format(
                sql.Identifier(names.app)
            )
        )
    with psycopg.connect(login_url(url, names.app), autocommit=True) as app:
        generate(app, seed=7, n_orgs=2)
    results = [
        refresh_view(v, url=login_url(url, names.pipeline), trigger="test:roles") for v in VIEWS
    ]
    return SimpleNamespace(url=url, names=names, first=first, second=second, refreshed=results)


@pytest.fixture
def admin(setup) -> Iterator[psycopg.Connection]:
    with psycopg.connect(setup.url, autocommit=True) as c:
        yield c


@pytest.fixture
def dashboard(setup) -> Iterator[psycopg.Connection]:
    with psycopg.connect(login_url(setup.url, setup.names.dashboard), autocommit=True) as c:
        yield c


@pytest.fixture
def app(setup) -> Iterator[psycopg.Connection]:
    with psycopg.connect(login_url(setup.url, setup.names.app), autocommit=True) as c:
        yield c


@pytest.fixture
def pipeline(setup) -> Iterator[psycopg.Connection]:
    with psycopg.connect(login_url(setup.url, setup.names.pipeline), autocommit=True) as c:
        yield c


def denied(conn: psycopg.Connection, statement: str, error=DENIED) -> None:
    with pytest.raises(error):
        conn.execute(statement)


# --------------------------------------------------------------------------- the design


def test_every_object_of_the_schema_is_classified(admin, setup):
    """Source tables are those a view reads, which are those with change capture; the
    pipeline's are listed in the design. Anything else (here: organizations, which no view
    reads) is the app's and left alone.

    A table added by a later migration without capture triggers and without an entry in
    ``roles.PIPELINE_TABLES`` fails here: it would otherwise be handed to nobody.
    """
    inventory = roles.inspect(admin)
    captured = {
        name
        for (name,) in admin.execute(
            """SELECT DISTINCT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE c.relnamespace = %s::regnamespace AND t.tgname LIKE 'efir_capture_%%'""",
            (SCHEMA,),
        ).fetchall()
    }
    assert [r.name for r in inventory.relations if r.category is None] == ["organizations"]
    assert [f.signature for f in inventory.functions if not f.managed] == []
    sources = {r.name for r in inventory.by_category(roles.SOURCE)}
    assert sources == captured
    pipeline_tables = {r.name for r in inventory.by_category(roles.PIPELINE_TABLE)}
    assert set(PIPELINE_TABLES) <= pipeline_tables <= set(roles.pipeline_tables())
    assert {r.name for r in inventory.by_category(roles.MANAGED_VIEW)} == set(catalog.view_names())
    live = {r.name for r in inventory.by_category(roles.LIVE_VIEW)}
    assert {v.live_view for v in VIEWS} <= live <= roles.catalog_live_views()
    assert {r.name for r in inventory.by_category(roles.PIPELINE_VIEW)} == set(roles.PIPELINE_VIEWS)
    assert {f.name for f in inventory.functions} <= set(roles.PIPELINE_FUNCTIONS)
    assert len(setup.first.notes) == 1 and "(organizations)" in setup.first.notes[0]


def test_change_capture_functions_are_security_definer_with_a_fixed_search_path(admin, setup):
    """Owned by the capture role (nobody logs in as it): no login role can switch them off."""
    rows = admin.execute(
        """SELECT p.proname::text, p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner)
           FROM pg_proc p WHERE p.pronamespace = %s::regnamespace
             AND p.proname IN ('capture_change', 'capture_truncate', 'view_freshness')
           ORDER BY 1""",
        (SCHEMA,),
    ).fetchall()
    assert len(rows) == 3
    for name, definer, config, owner in rows:
        assert definer, name
        assert any(c.startswith("search_path=") for c in config or []), name
        expected = setup.names.pipeline if name == "view_freshness" else setup.names.capture
        assert owner == expected, name


def test_second_run_changes_no_owner_and_creates_no_role(setup):
    assert setup.first.created == list(setup.names.as_dict().values())
    assert setup.second.created == []
    second = [s.why + " " + repr(s.sql) for s in setup.second.statements]
    assert not any("OWNER TO" in s or "CREATE ROLE" in s for s in second)


def test_the_database_grants_exactly_the_design(admin, setup):
    """What PostgreSQL answers (has_*_privilege, ownership) equals roles.intended_matrix."""
    actual = roles.privilege_matrix(admin, setup.names)
    intended = roles.intended_matrix(roles.inspect(admin))
    assert actual == intended
    print(
        "\n"
        + "\n".join(
            f"{r['object']:<28} {r['pipeline']:<28} {r['dashboard']:<8} {r['app']}" for r in actual
        )
    )


def test_extra_grants_are_revoked_by_the_next_run(admin, setup):
    names = setup.names
    admin.execute(
        sql.SQL("GRANT INSERT ON efir_budget.mv_refresh_log TO {}").format(
            sql.Identifier(names.app)
        )
    )
    admin.execute(
        sql.SQL("GRANT CREATE ON SCHEMA efir_budget TO {}").format(sql.Identifier(names.dashboard))
    )
    roles.apply(setup.url, names)
    assert roles.privilege_matrix(admin, names) == roles.intended_matrix(roles.inspect(admin))


# --------------------------------------------------------------------------- dashboard


@pytest.mark.parametrize("view", [v.name for v in VIEWS])
def test_dashboard_reads_each_view_but_cannot_refresh_it(dashboard, view):
    assert dashboard.execute(f"SELECT count(*) FROM efir_budget.{view}").fetchone()[0] > 0
    denied(dashboard, f"REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.{view}")
    denied(dashboard, f"REFRESH MATERIALIZED VIEW efir_budget.{view}")


def test_dashboard_reads_the_freshness_view(dashboard):
    rows = dashboard.execute(
        "SELECT view_name, populated, data_as_of FROM efir_budget.kpi_freshness ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(catalog.view_names())
    assert all(populated and as_of is not None for _, populated, as_of in rows)


@pytest.mark.parametrize(
    "relation",
    [*SOURCE_TABLES, *PIPELINE_TABLES, "refresh_history", "v_kpi_dashboard"],
)
def test_dashboard_reads_nothing_but_the_views(dashboard, relation):
    denied(dashboard, f"SELECT 1 FROM efir_budget.{relation} LIMIT 1")


def test_dashboard_writes_nothing(dashboard):
    denied(dashboard, "INSERT INTO efir_budget.budget_versions (id) VALUES (gen_random_uuid())")
    denied(dashboard, "DELETE FROM efir_budget.mv_refresh_log")
    denied(dashboard, "CREATE TABLE efir_budget.dashboard_scratch (id int)")
    denied(dashboard, "SELECT efir_budget.prune_change_log()")
    with pytest.raises(psycopg.Error):  # a materialized view is not writable by anyone
        dashboard.execute("DELETE FROM efir_budget.mv_kpi_dashboard")


# --------------------------------------------------------------------------- app


def test_app_writes_reach_the_change_log(admin, app, setup):
    logged = {
        table
        for (table,) in admin.execute(
            "SELECT DISTINCT table_name FROM efir_budget.change_log WHERE db_user = %s",
            (setup.names.app,),
        ).fetchall()
    }
    assert {
        "budget_versions",
        "enrollment_plans",
        "budget_consolidations",
    } <= logged

    version = app.execute(
        """SELECT v.id, v.status::text FROM efir_budget.budget_versions v
           WHERE v.deleted_at IS NULL AND v.status <> 'superseded'
             AND EXISTS (SELECT 1 FROM efir_budget.revenue_plans r WHERE r.budget_version_id = v.id)
           LIMIT 1"""
    ).fetchone()
    app.execute(
        "UPDATE efir_budget.budget_versions SET status = 'superseded' WHERE id = %s", (version[0],)
    )
    app.execute("DELETE FROM efir_budget.revenue_plans WHERE budget_version_id = %s", (version[0],))
    rows = admin.execute(
        """SELECT table_name, operation, old_status::text, new_status::text, db_user
           FROM efir_budget.change_log WHERE budget_version_id = %s AND operation <> 'INSERT'
           ORDER BY id""",
        (version[0],),
    ).fetchall()
    assert ("budget_versions", "UPDATE", version[1], "superseded", setup.names.app) in rows
    assert any(r[0] == "revenue_plans" and r[1] == "DELETE" for r in rows)


@pytest.mark.parametrize("view", [v.name for v in VIEWS])
def test_app_cannot_refresh_alter_or_drop_a_view(app, view):
    live = catalog.get_view(view).live_view
    denied(app, f"REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.{view}")
    denied(app, f"DROP MATERIALIZED VIEW efir_budget.{view}")
    denied(app, f"ALTER MATERIALIZED VIEW efir_budget.{view} RENAME TO {view}_x")
    denied(app, f"DROP VIEW efir_budget.{live}")
    denied(app, f"CREATE OR REPLACE VIEW efir_budget.{live} AS SELECT 1 AS one")


def test_app_cannot_touch_the_pipeline_tables(app):
    for table in PIPELINE_TABLES:
        denied(app, f"SELECT 1 FROM efir_budget.{table}")
        denied(app, f"DELETE FROM efir_budget.{table}")
    denied(
        app,
        """INSERT INTO efir_budget.mv_refresh_log (view_name, outcome, requested_at, finished_at)
           VALUES ('mv_kpi_dashboard', 'failed', now(), now())""",
    )
    denied(
        app,
        """INSERT INTO efir_budget.change_log (table_name, operation, rows_affected, txid, changed_at, db_user)
           VALUES ('organizations', 'INSERT', 1, 1, now(), 'forged')""",
    )


def test_app_cannot_skip_change_capture_or_read_the_views(app):
    denied(app, "ALTER TABLE efir_budget.enrollment_plans DISABLE TRIGGER USER")
    denied(app, "TRUNCATE efir_budget.enrollment_plans")
    denied(app, "CREATE TABLE efir_budget.app_scratch (id int)")
    denied(app, "SELECT 1 FROM efir_budget.mv_kpi_dashboard")


# --------------------------------------------------------------------------- pipeline


def test_pipeline_refreshed_every_view_through_the_engine(admin, setup):
    assert [(r.view, r.outcome) for r in setup.refreshed] == [(v.name, "success") for v in VIEWS]
    ids = [r.log_id for r in setup.refreshed]
    logged = admin.execute(
        "SELECT view_name FROM efir_budget.mv_refresh_log WHERE id = ANY(%s) ORDER BY id", (ids,)
    ).fetchall()
    assert [v for (v,) in logged] == [v.name for v in VIEWS]


@pytest.mark.parametrize("view", [v.name for v in VIEWS])
def test_pipeline_refreshes_each_view_concurrently(pipeline, setup, view):
    pipeline.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.{view}")
    result = refresh_view(
        catalog.get_view(view), url=login_url(setup.url, setup.names.pipeline), trigger="test:roles"
    )
    assert result.outcome == "success" and result.concurrently, result.error


def test_pipeline_runs_the_checks(pipeline, setup):
    for view in VIEWS:
        assert refresh_view(view, url=login_url(setup.url, setup.names.pipeline)).ok
    settings = health.Thresholds.default()
    for view in VIEWS:
        for check in health.checks_for(view):
            result = health.run_check(pipeline, view, check, settings)
            if check in (health.COMPLETENESS, health.RECONCILIATION):
                assert result.passed, (view.name, check, result.description)


def test_pipeline_writes_only_its_own_tables(pipeline):
    for table in SOURCE_TABLES:
        assert pipeline.execute(f"SELECT count(*) FROM efir_budget.{table}").fetchone()[0] >= 0
        denied(pipeline, f"DELETE FROM efir_budget.{table}")
        denied(pipeline, f"UPDATE efir_budget.{table} SET updated_at = now()")
    denied(pipeline, "INSERT INTO efir_budget.budget_versions (id) VALUES (gen_random_uuid())")
    denied(pipeline, "SELECT 1 FROM efir_budget.organizations")  # no view reads it
    denied(pipeline, "TRUNCATE efir_budget.change_log")
    denied(pipeline, "CREATE TABLE efir_budget.pipeline_scratch (id int)")
    # History is append-only, for the pipeline too.
    denied(pipeline, "UPDATE efir_budget.mv_refresh_log SET outcome = 'failed'")
    denied(pipeline, "DELETE FROM efir_budget.mv_refresh_log")
    assert pipeline.execute("SELECT efir_budget.prune_change_log('0 seconds')").fetchone()[0] >= 0
    alert = pipeline.execute(
        """INSERT INTO efir_budget.alert_outbox (kind, payload) VALUES ('check_failure', '{}')
           RETURNING id"""
    ).fetchone()[0]
    pipeline.execute(
        "UPDATE efir_budget.alert_outbox SET delivered_at = now() WHERE id = %s", (alert,)
    )
    pipeline.execute("DELETE FROM efir_budget.alert_outbox WHERE id = %s", (alert,))


@pytest.mark.parametrize("who", ["dashboard", "app"])
def test_nobody_but_the_pipeline_writes_the_refresh_history(setup, who):
    with psycopg.connect(login_url(setup.url, setup.names[who]), autocommit=True) as c:
        denied(
            c,
            """INSERT INTO efir_budget.mv_refresh_log (view_name, outcome, requested_at, finished_at)
               VALUES ('mv_kpi_dashboard', 'success', now(), now())""",
        )
        denied(c, "UPDATE efir_budget.mv_refresh_log SET error = 'x'")
        denied(c, "DELETE FROM efir_budget.mv_refresh_log")


# --------------------------------------------------------------------------- the command


def run_roles(*args: str, url: str, **env: str) -> subprocess.CompletedProcess:
    return run_cli("db", "roles", *args, url=url, drop=("EFIR_ROLE_",), **env)


def test_dry_run_prints_the_sql_and_changes_nothing_and_that_sql_works(make_database, role_cleanup):
    names = role_names("dry")
    url = make_database()
    role_cleanup(url, names)
    result = run_roles(
        "--dry-run",
        "--pipeline-role",
        names.pipeline,
        url=url,
        EFIR_ROLE_DASHBOARD=names.dashboard,  # flags and environment both work
        EFIR_ROLE_APP=names.app,
        EFIR_ROLE_CAPTURE=names.capture,
    )
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert f'CREATE ROLE "{names.pipeline}" LOGIN' in script
    assert (
        f'ALTER MATERIALIZED VIEW "efir_budget"."mv_kpi_dashboard" OWNER TO "{names.pipeline}"'
        in script
    )
    with psycopg.connect(url, autocommit=True) as c:
        assert all(
            c.execute("SELECT to_regrole(%s)", (n,)).fetchone()[0] is None
            for n in names.as_dict().values()
        )
        # The printed script is the real thing: run as is, it gives the design.
        c.execute(script)
        assert roles.privilege_matrix(c, names) == roles.intended_matrix(roles.inspect(c))


def test_the_command_prints_the_matrix_and_nologin_makes_group_roles(make_database, role_cleanup):
    names = role_names("cli")
    url = make_database()
    role_cleanup(url, names)
    flags = [
        "--pipeline-role",
        names.pipeline,
        "--dashboard-role",
        names.dashboard,
        "--app-role",
        names.app,
        "--capture-role",
        names.capture,
    ]
    result = run_roles(*flags, "--nologin", url=url)
    assert result.returncode == 0, result.stderr
    assert "mv_kpi_dashboard" in result.stdout and "owner" in result.stdout
    with psycopg.connect(url, autocommit=True) as c:
        logins = c.execute(
            "SELECT bool_or(rolcanlogin) FROM pg_roles WHERE rolname = ANY(%s)",
            (list(names.as_dict().values()),),
        ).fetchone()[0]
        assert logins is False
    again = run_roles(*flags, "--dry-run", url=url)
    assert f'ALTER ROLE "{names.app}" LOGIN' in again.stdout and "CREATE ROLE" not in again.stdout


@pytest.mark.parametrize(
    "env",
    [
        {"EFIR_ROLE_APP": "Efir-App"},
        {"EFIR_ROLE_APP": "pg_app"},
        {"EFIR_ROLE_APP": "efir_pipeline"},  # the same name as the pipeline role's default
        {"EFIR_ROLE_DASHBOARD": "x" * 64},
    ],
)
def test_bad_role_names_exit_2_before_connecting(env):
    result = run_roles(url="postgresql://nobody@127.0.0.1:1/none", **env)
    assert result.returncode == 2
    assert "role" in result.stderr and "Traceback" not in result.stderr


def test_role_names_come_from_flags_then_environment_then_defaults():
    environment = Settings.from_env({"EFIR_ROLE_DASHBOARD": "grafana_reader"})
    names = RoleNames.from_settings(environment, pipeline="etl")
    assert names.as_dict() == {
        "pipeline": "etl",
        "dashboard": "grafana_reader",
        "app": "efir_app",
        "capture": "efir_capture",
    }
    with pytest.raises(ConfigError):
        RoleNames("a", "a", "b", "c")


def test_the_admin_itself_cannot_be_one_of_the_roles(setup, admin):
    me = admin.execute("SELECT current_user").fetchone()[0]
    with pytest.raises(ConfigError, match="running `db roles`"):
        roles.apply(setup.url, replace(setup.names, pipeline=me), dry_run=True)


# --------------------------------------------------------------------------- a non-superuser admin


def test_a_non_superuser_migration_owner_sets_up_roles_and_keeps_migrating(
    make_database, role_cleanup, server_url
):
    """Production: the migration owner is rarely a superuser. It becomes a member of the
    pipeline role, so it can hand the views over and later migrations can still drop and
    recreate them; re-running ``db roles`` after an upgrade covers the new views."""
    names = role_names("na")
    admin_role = f"efir_t_{RUN}_naadmin"
    url = make_database(migrated=False)
    role_cleanup(url, [*names.as_dict().values(), admin_role])
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(admin_role)))
        c.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(urlsplit(url).path.lstrip("/")), sql.Identifier(admin_role)
            )
        )
    set_passwords(url, [admin_role])
    admin_url = login_url(url, admin_role)
    migrate.upgrade(admin_url)
    roles.apply(admin_url, names)
    set_passwords(url, names)
    pipeline_url = login_url(url, names.pipeline)
    assert all(refresh_view(v, url=pipeline_url).ok for v in VIEWS)

    migrate.downgrade(admin_url, "0003_change_capture")  # drops views the pipeline owns
    migrate.upgrade(admin_url)
    workforce = catalog.get_view("mv_workforce_utilization")
    before = refresh_view(workforce, url=pipeline_url)
    # PostgreSQL < 17: only the owner may refresh; 17+: the MAINTAIN privilege is checked.
    assert not before.ok
    assert "must be owner" in before.error or "permission denied" in before.error
    script, _ = roles.apply(admin_url, names)
    assert refresh_view(workforce, url=pipeline_url).ok
    with psycopg.connect(admin_url, autocommit=True) as c:
        assert roles.privilege_matrix(c, names) == roles.intended_matrix(roles.inspect(c))
        create = c.execute(
            "SELECT has_schema_privilege(%s, %s, 'CREATE')", (names.pipeline, SCHEMA)
        ).fetchone()[0]
        assert create is False  # the temporary CREATE for ALTER ... OWNER is gone
    assert any("GRANT CREATE ON SCHEMA" in repr(s.sql) for s in script.statements)


def test_an_unmigrated_database_says_what_to_run(make_database):
    result = run_roles("--dry-run", url=make_database(migrated=False))
    assert result.returncode == 4
    assert "efir-pipeline db upgrade" in result.stderr


# --------------------------------------------------------------------------- hardening


def test_no_reader_can_stall_a_refresh(dashboard, setup):
    """Any role can take any advisory lock key; the view's turn is a row lock only the
    pipeline (UPDATE on refresh_state) can take."""
    dashboard.execute(
        "SELECT pg_advisory_lock(1162234194, hashtext('efir_budget.mv_kpi_dashboard'))"
    )
    denied(
        dashboard,
        "SELECT 1 FROM efir_budget.refresh_state WHERE view_name = 'mv_kpi_dashboard' FOR UPDATE",
    )
    pipeline_url = login_url(setup.url, setup.names.pipeline)
    result = refresh_view(catalog.get_view("mv_kpi_dashboard"), url=pipeline_url, wait=False)
    assert result.outcome == "success"


def test_the_pipeline_cannot_switch_change_capture_off(pipeline):
    """The capture functions run for every writer of the app's tables; the pipeline's
    credential (deployed to every Dagster process) must not be able to drop or alter them."""
    for function in ("capture_change()", "capture_truncate()", "outside_refresh_end()"):
        denied(pipeline, f"DROP FUNCTION efir_budget.{function} CASCADE")
        denied(pipeline, f"ALTER FUNCTION efir_budget.{function} SECURITY INVOKER")
    denied(pipeline, "ALTER TABLE efir_budget.revenue_plans DISABLE TRIGGER efir_capture_insert")


@pytest.mark.parametrize("attribute", ["CREATEROLE", "SUPERUSER", "REPLICATION", "BYPASSRLS"])
def test_a_role_able_to_escape_its_privileges_is_refused(
    make_database, role_cleanup, server_url, attribute
):
    """A CREATEROLE login can grant itself the pipeline role; a superuser, replication or
    bypass-RLS role is not held by privileges at all."""
    names = role_names(f"x{attribute[:3].lower()}")
    url = make_database()
    role_cleanup(url, names)
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(
            sql.Identifier(names.dashboard), sql.SQL(attribute)
        ))  # fmt: skip
    with pytest.raises(ConfigError, match=attribute):
        roles.apply(url, names, dry_run=True)
