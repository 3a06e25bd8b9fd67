"""Test data and helpers every test module shares: versions, child rows, change-log
rows, ageing, refreshes.

One place writes budget rows for the tests, so when the source schema changes the
tests change here, not in twenty files.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.refresh import refresh_view

SCHOOL = "EFIR Riyadh"
# Tables the migrations fill with reference rows; everything else is test data.
REFERENCE_TABLES = (
    "academic_cycles",
    "academic_levels",
    "nationality_types",
    "teacher_categories",
    "subjects",
)


# --------------------------------------------------------------------------- versions


def add_org(conn: psycopg.Connection, code: str = "EFIR", name: str = SCHOOL) -> uuid.UUID:
    """The school ``code`` (created once, found again afterwards).

    organizations is (id, name, is_active) only: the code is part of the school's name,
    ``"<name> (<code>)"``, which finds it again."""
    full_name = f"{name} ({code})"
    row = conn.execute(
        "SELECT id FROM efir_budget.organizations WHERE name = %s ORDER BY id LIMIT 1",
        (full_name,),
    ).fetchone()
    if row is None:
        row = conn.execute(
            """INSERT INTO efir_budget.organizations (id, name, is_active)
               VALUES (%s, %s, true) RETURNING id""",
            (uuid.uuid4(), full_name),
        ).fetchone()
    return row[0]


def add_version(
    conn: psycopg.Connection,
    org: uuid.UUID | None = None,
    *,
    name: str | None = None,
    year: int = 2026,
    status: str = "working",
) -> uuid.UUID:
    """A budget version with no rows (of the shared school unless ``org`` is given)."""
    org = org or add_org(conn)
    return conn.execute(
        """INSERT INTO efir_budget.budget_versions
               (id, created_at, updated_at, organization_id, name, fiscal_year, academic_year,
                status, is_baseline)
           VALUES (%s, now(), now(), %s, %s, %s, %s, %s, false) RETURNING id""",
        (uuid.uuid4(), org, name or f"Budget {year} {status}", year, f"{year - 1}-{year}", status),
    ).fetchone()[0]


def add_versions(conn: psycopg.Connection, n: int, *, first_year: int = 2030) -> list[uuid.UUID]:
    """``n`` working versions without rows, one fiscal year each."""
    org = add_org(conn)
    return [add_version(conn, org, year=first_year + i) for i in range(n)]


def add_budget_lines(conn: psycopg.Connection, version: uuid.UUID) -> None:
    """Two revenue rows and two consolidation rows: enough for every view to have rows."""
    conn.execute(
        """INSERT INTO efir_budget.revenue_plans
               (id, created_at, updated_at, budget_version_id, account_code, description,
                category, amount_sar, is_calculated, trimester)
           VALUES (gen_random_uuid(), now(), now(), %(v)s, '70110', 'Tuition T1', 'tuition',
                   1000000.00, false, 1),
                  (gen_random_uuid(), now(), now(), %(v)s, '70210', 'Registration fees', 'fees',
                   25000.50, false, NULL)""",
        {"v": version},
    )
    conn.execute(
        """INSERT INTO efir_budget.budget_consolidations
               (id, created_at, updated_at, budget_version_id, account_code, account_name,
                consolidation_category, is_revenue, amount_sar, source_table, source_count,
                is_calculated)
           VALUES (gen_random_uuid(), now(), now(), %(v)s, '70110', 'Tuition', 'revenue_tuition',
                   true, 1000000.00, 'revenue_plans', 1, true),
                  (gen_random_uuid(), now(), now(), %(v)s, '64110', 'Teaching salaries',
                   'personnel_teaching', false, 400000.00, 'personnel_cost_plans', 3, true)""",
        {"v": version},
    )


def add_version_with_lines(
    conn: psycopg.Connection, name: str = "Budget", *, year: int = 2026, status: str = "approved"
) -> uuid.UUID:
    """An approved version of the shared school with :func:`add_budget_lines`."""
    version = add_version(conn, name=name, year=year, status=status)
    add_budget_lines(conn, version)
    return version


def add_versions_with_lines(conn: psycopg.Connection, count: int) -> list[uuid.UUID]:
    return [add_version_with_lines(conn, f"Budget {i}", year=2000 + i) for i in range(count)]


# --------------------------------------------------------------------------- child rows


def add_operating_costs(conn: psycopg.Connection, versions: list[uuid.UUID], per_version: int):
    """One statement writing ``per_version`` rows into each version (one account each)."""
    conn.execute(
        """INSERT INTO efir_budget.operating_cost_plans
               (id, created_at, updated_at, budget_version_id, account_code, description,
                category, amount_sar, is_calculated)
           SELECT gen_random_uuid(), now(), now(), v, '606' || g, 'Supplies ' || g, 'supplies',
                  g, false
           FROM unnest(%s::uuid[]) AS v, generate_series(1, %s) AS g""",
        (versions, per_version),
    )


def add_enrollment(
    conn: psycopg.Connection, versions: list[uuid.UUID], limit: int | None = None, levels=None
):
    """Enrollment rows (level x nationality) for the versions, in one statement."""
    conn.execute(
        """INSERT INTO efir_budget.enrollment_plans
               (id, created_at, updated_at, budget_version_id, level_id, nationality_type_id,
                student_count)
           SELECT gen_random_uuid(), now(), now(), v, l.id, n.id, 20
           FROM unnest(%s::uuid[]) AS v
           CROSS JOIN efir_budget.academic_levels l
           CROSS JOIN efir_budget.nationality_types n
           WHERE %s::text[] IS NULL OR l.code = ANY(%s::text[])
           ORDER BY v, l.sort_order, n.code
           LIMIT %s""",
        (versions, levels, levels, limit),
    )


def add_dhg(conn: psycopg.Connection, version: uuid.UUID, subject: str = "MATH") -> None:
    conn.execute(
        """INSERT INTO efir_budget.dhg_teacher_requirements
               (id, created_at, updated_at, budget_version_id, subject_id, total_hours_per_week,
                standard_teaching_hours, simple_fte, rounded_fte, hsa_hours)
           SELECT gen_random_uuid(), now(), now(), %s, id, 36, 18, 2, 2, 0
           FROM efir_budget.subjects WHERE code = %s""",
        (version, subject),
    )


def add_consolidation(conn: psycopg.Connection, version: uuid.UUID, accounts: int = 5) -> None:
    conn.execute(
        """INSERT INTO efir_budget.budget_consolidations
               (id, created_at, updated_at, budget_version_id, account_code, account_name,
                consolidation_category, is_revenue, amount_sar, source_table, source_count,
                is_calculated)
           SELECT gen_random_uuid(), now(), now(), %s, '7011' || g, 'Tuition', 'revenue_tuition',
                  true, 1000 * g, 'revenue_plans', 1, true
           FROM generate_series(1, %s) g""",
        (version, accounts),
    )


@contextmanager
def capture_bypassed(conn: psycopg.Connection) -> Iterator[None]:
    """Writes that skip the triggers, as a careless restore or replication would."""
    conn.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        conn.execute("SET session_replication_role = DEFAULT")


# --------------------------------------------------------------------------- change log


def log_rows(conn: psycopg.Connection, table: str | None = None) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            """SELECT id, table_name, budget_version_id, operation, rows_affected,
                      old_status, new_status,
                      cardinality(level_ids) AS levels, txid, changed_at, db_user
               FROM efir_budget.change_log
               WHERE %s::text IS NULL OR table_name = %s ORDER BY id""",
            (table, table),
        ).fetchall()


def clear_log(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE efir_budget.change_log")


def max_change_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM efir_budget.change_log").fetchone()[0]


def age_changes(
    conn: psycopg.Connection,
    age: str | timedelta,
    *,
    relative: bool = False,
    since_id: int = 0,
    **where,
) -> None:
    """Pretend change-log rows were written ``age`` ago (``relative``: ``age`` earlier
    than they were), those with an id above ``since_id`` and the ``where`` column values."""
    conditions = ["id > %(since_id)s", *(f"{k} = %({k})s" for k in where)]
    base = "changed_at" if relative else "clock_timestamp()"
    conn.execute(
        f"UPDATE efir_budget.change_log SET changed_at = {base} - %(age)s::interval "
        f"WHERE {' AND '.join(conditions)}",
        {"age": age, "since_id": since_id, **where},
    )


# --------------------------------------------------------------------------- refreshes


def refresh_all(url: str, trigger: str = "test") -> None:
    """Refresh every view through the engine, dependencies first; each must succeed."""
    for view in catalog.resolve_views():
        result = refresh_view(view, url=url, trigger=trigger)
        assert result.ok, result.error


def view_equals_live_query(conn: psycopg.Connection, view: catalog.ManagedView) -> bool:
    """The materialized rows equal the live defining query (EXCEPT both ways)."""
    mv = sql.Identifier(catalog.SCHEMA, view.name)
    live = sql.Identifier(catalog.SCHEMA, view.live_view)
    query = sql.SQL(
        "SELECT (SELECT count(*) FROM (TABLE {mv} EXCEPT ALL TABLE {live}) a) "
        "     + (SELECT count(*) FROM (TABLE {live} EXCEPT ALL TABLE {mv}) b)"
    ).format(mv=mv, live=live)
    return conn.execute(query).fetchone()[0] == 0


# --------------------------------------------------------------------------- reset


def reset_data(c: psycopg.Connection) -> None:
    """Remove all non-reference rows and empty the views, so each test starts alike."""
    tables = c.execute(
        """SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables
           WHERE schemaname = 'efir_budget' AND NOT (tablename = ANY(%s))""",
        ([*REFERENCE_TABLES, migrate.VERSION_TABLE, "refresh_state"],),
    ).fetchall()
    if tables:
        c.execute("TRUNCATE " + ", ".join(t for (t,) in tables) + " RESTART IDENTITY CASCADE")
    # Dependencies first: a view reading another view must see it already emptied.
    for view in catalog.resolve_views():
        c.execute(f"REFRESH MATERIALIZED VIEW {view.qualified_name}")
    # Change capture logged that TRUNCATE, and the history those REFRESHes (run outside
    # the engine): start every test with both empty.
    c.execute("TRUNCATE efir_budget.change_log, efir_budget.mv_refresh_log RESTART IDENTITY")
    c.execute("UPDATE efir_budget.refresh_state SET generation = 0, full_generation = 0")
