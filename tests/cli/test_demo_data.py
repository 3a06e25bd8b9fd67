"""Demo data on a real PostgreSQL: realistic, consistent, reproducible, one transaction."""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal

import psycopg
import pytest

from efir_pipeline.cli import demo_data
from efir_pipeline.core.errors import EfirError

CHILD_TABLES = (
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
    "budget_consolidations",
)
ALL_TABLES = ("organizations", "budget_versions", *CHILD_TABLES)

# Per version, computed from the tables themselves (not from the views under test elsewhere).
PER_VERSION_SQL = """
SELECT v.id, v.name, v.fiscal_year, v.academic_year, v.status::text AS status,
       (SELECT sum(student_count) FROM efir_budget.enrollment_plans e
        WHERE e.budget_version_id = v.id) AS students,
       (SELECT sum(number_of_classes) FROM efir_budget.class_structures c
        WHERE c.budget_version_id = v.id) AS classes,
       (SELECT sum(simple_fte) FROM efir_budget.dhg_teacher_requirements d
        WHERE d.budget_version_id = v.id) AS required_fte,
       (SELECT sum(fte_count) FROM efir_budget.teacher_allocations a
        WHERE a.budget_version_id = v.id) AS allocated_fte,
       (SELECT sum(amount_sar) FROM efir_budget.revenue_plans r
        WHERE r.budget_version_id = v.id) AS revenue,
       (SELECT sum(total_cost_sar) FROM efir_budget.personnel_cost_plans p
        WHERE p.budget_version_id = v.id) AS personnel,
       (SELECT sum(amount_sar) FROM efir_budget.operating_cost_plans o
        WHERE o.budget_version_id = v.id) AS operating,
       (SELECT sum(total_cost_sar) FROM efir_budget.capex_plans x
        WHERE x.budget_version_id = v.id) AS capex
FROM efir_budget.budget_versions v
ORDER BY v.fiscal_year, v.created_at
"""

# Columns holding reference ids: compared by code, since each database has its own ids.
REFERENCE_COLUMNS = {
    "level_id": "academic_levels",
    "nationality_type_id": "nationality_types",
    "subject_id": "subjects",
    "cycle_id": "academic_cycles",
    "category_id": "teacher_categories",
}


def rows_of(conn: psycopg.Connection, query: str, params=None) -> list[dict]:
    """Rows as dicts, numeric values as float (for arithmetic with plain numbers)."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return [
        {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
        for row in cur.execute(query, params).fetchall()
    ]


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM efir_budget.{table}").fetchone()[0]


def fingerprint(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    """Row count and md5 of the table's ordered rows, reference ids replaced by their codes."""
    columns = [
        name
        for (name,) in conn.execute(
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = 'efir_budget' AND table_name = %s ORDER BY ordinal_position""",
            (table,),
        )
    ]
    cells = [
        f"(SELECT r.code FROM efir_budget.{REFERENCE_COLUMNS[c]} r WHERE r.id = t.{c})"
        if c in REFERENCE_COLUMNS
        else f"t.{c}"
        for c in columns
    ]
    query = f"""
        SELECT count(*), md5(coalesce(string_agg(line, E'\\n' ORDER BY line), ''))
        FROM (SELECT jsonb_build_array({", ".join(cells)})::text AS line
              FROM efir_budget.{table} t) AS rows
    """
    return conn.execute(query).fetchone()


def fingerprints(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {table: fingerprint(conn, table) for table in ALL_TABLES}


def load(url: str, *, timezone: str = "UTC", **kwargs) -> demo_data.DemoSummary:
    with psycopg.connect(url, options=f"-c TimeZone={timezone}") as conn:
        return demo_data.load_demo_data(conn, **kwargs)


# --------------------------------------------------------------------------------------
# EFIR scale
# --------------------------------------------------------------------------------------


def test_efir_scale_is_realistic_per_version(conn):
    steps: list[tuple[str, int, int]] = []
    summary = demo_data.load_demo_data(conn, progress=lambda *step: steps.append(step))

    assert summary.organizations == 1
    assert summary.versions == 10
    assert summary.seconds < 30
    org = rows_of(conn, "SELECT name, is_active FROM efir_budget.organizations")
    assert org == [{"name": "École Française Internationale de Riyad", "is_active": True}]
    assert org[0]["name"] == demo_data.EFIR_NAME

    versions = rows_of(conn, PER_VERSION_SQL)
    assert len(versions) == 10
    for v in versions:
        label = f"{v['name']} ({v['status']})"
        assert 1600 <= v["students"] <= 2000, label
        assert 65 <= v["classes"] <= 85, label
        assert 100 <= v["allocated_fte"] <= 140, label
        assert 100 <= v["required_fte"] <= 140, label
        assert 75e6 <= v["revenue"] <= 90e6, label
        assert abs(v["allocated_fte"] - v["required_fte"]) <= v["required_fte"] * 0.08, label
        costs = v["personnel"] + v["operating"] + v["capex"]
        assert 0.85 * v["revenue"] <= costs <= 1.02 * v["revenue"], label  # a thin margin
        assert 0.55 <= v["personnel"] / v["revenue"] <= 0.75, label
        assert v["academic_year"] == f"{v['fiscal_year']}-{v['fiscal_year'] + 1}", label

    assert {v["fiscal_year"] for v in versions} == {2024, 2025, 2026}
    assert Counter(v["status"] for v in versions) == {
        "superseded": 3,
        "approved": 3,
        "forecast": 2,
        "submitted": 1,
        "working": 1,
    }
    # Versions of a year differ a little, and the school grows from year to year.
    by_year = {
        fy: [v["students"] for v in versions if v["fiscal_year"] == fy] for fy in (2024, 2026)
    }
    assert len(set(by_year[2024])) > 1
    assert max(by_year[2024]) < min(by_year[2026])

    assert summary.rows == {table: count(conn, table) for table in ALL_TABLES}
    empty = conn.execute(
        " UNION ALL ".join(
            f"SELECT '{t}' FROM efir_budget.budget_versions v WHERE NOT EXISTS "
            f"(SELECT 1 FROM efir_budget.{t} c WHERE c.budget_version_id = v.id)"
            for t in CHILD_TABLES
        )
    ).fetchall()
    assert empty == [], "every version has rows in every child table"

    assert [s[0] for s in steps] == list(demo_data.STEPS)
    assert [s[1] for s in steps] == list(range(1, len(demo_data.STEPS) + 1))
    assert {s[2] for s in steps} == {len(demo_data.STEPS)}


def test_efir_versions_follow_the_lifecycle_rules(conn):
    demo_data.load_demo_data(conn)

    working = conn.execute(
        """SELECT organization_id, fiscal_year, count(*) FROM efir_budget.budget_versions
           WHERE status = 'working' AND deleted_at IS NULL GROUP BY 1, 2 HAVING count(*) > 1"""
    ).fetchall()
    assert working == []
    versions = rows_of(
        conn,
        """SELECT v.name, v.status::text AS status, v.is_baseline, v.submitted_at, v.approved_at,
                  v.created_at, v.updated_at, p.fiscal_year AS parent_year, v.fiscal_year,
                  p.created_at AS parent_created_at
           FROM efir_budget.budget_versions v
           LEFT JOIN efir_budget.budget_versions p ON p.id = v.parent_version_id""",
    )
    for v in versions:
        assert v["is_baseline"] == (v["status"] == "approved"), v["name"]
        assert (v["approved_at"] is not None) == (v["status"] == "approved"), v["name"]
        if v["status"] in ("submitted", "approved"):
            assert v["created_at"] < v["submitted_at"] <= v["updated_at"], v["name"]
        if v["approved_at"] is not None:
            assert v["submitted_at"] < v["approved_at"], v["name"]
        if v["parent_year"] is not None:
            assert v["parent_year"] == v["fiscal_year"]
            assert v["parent_created_at"] < v["created_at"], v["name"]
    # Timestamps come from the data, not from the clock: all in the past, in order
    # (organizations has none).
    bad = conn.execute(
        " UNION ALL ".join(
            f"SELECT '{t}' FROM efir_budget.{t} "
            "WHERE updated_at < created_at OR updated_at > now() OR created_at < '2020-01-01'"
            for t in ("budget_versions", *CHILD_TABLES)
        )
    ).fetchall()
    assert bad == []


def test_efir_rows_are_consistent_with_each_other(conn):
    demo_data.load_demo_data(conn)

    # Nationality mix close to 35 / 25 / 40 %.
    mix = dict(
        conn.execute(
            """SELECT n.code, sum(e.student_count)::numeric / sum(sum(e.student_count)) OVER ()
               FROM efir_budget.enrollment_plans e
               JOIN efir_budget.nationality_types n ON n.id = e.nationality_type_id
               GROUP BY n.code"""
        ).fetchall()
    )
    assert 0.30 <= mix["FRENCH"] <= 0.40
    assert 0.20 <= mix["SAUDI"] <= 0.30
    assert 0.35 <= mix["OTHER"] <= 0.45

    # Classes follow the enrollment; ATSEM only in maternelle, one per class.
    wrong_classes = conn.execute(
        """SELECT cs.id FROM efir_budget.class_structures cs
           JOIN efir_budget.academic_levels l ON l.id = cs.level_id
           JOIN efir_budget.academic_cycles c ON c.id = l.cycle_id
           WHERE cs.total_students <> (SELECT sum(student_count) FROM efir_budget.enrollment_plans e
                                       WHERE e.budget_version_id = cs.budget_version_id
                                         AND e.level_id = cs.level_id)
              OR cs.avg_class_size <> round(cs.total_students::numeric / cs.number_of_classes, 2)
              OR cs.avg_class_size > 30
              OR cs.requires_atsem <> (c.code = 'MAT')
              OR cs.atsem_count <> CASE WHEN c.code = 'MAT' THEN cs.number_of_classes ELSE 0 END"""
    ).fetchall()
    assert wrong_classes == []

    # DHG: FTE = hours / standard (24 h for primary-only subjects, 18 h otherwise); HSA is
    # what the rounded posts leave uncovered.
    wrong_dhg = conn.execute(
        """SELECT d.id FROM efir_budget.dhg_teacher_requirements d
           JOIN efir_budget.subjects s ON s.id = d.subject_id
           WHERE d.standard_teaching_hours <> CASE WHEN s.code = 'POLY' THEN 24 ELSE 18 END
              OR d.simple_fte <> round(d.total_hours_per_week / d.standard_teaching_hours, 2)
              OR abs(d.rounded_fte - d.simple_fte) > 0.5
              OR d.hsa_hours <> greatest(0, d.total_hours_per_week
                                            - d.rounded_fte * d.standard_teaching_hours)"""
    ).fetchall()
    assert wrong_dhg == []
    categories = {
        code
        for (code,) in conn.execute(
            """SELECT DISTINCT c.code FROM efir_budget.teacher_allocations a
               JOIN efir_budget.teacher_categories c ON c.id = a.category_id"""
        )
    }
    assert categories == {"AEFE_DETACHED", "AEFE_FUNDED", "LOCAL"}

    # Tuition billed by trimester, 40 / 30 / 30, on 701xx accounts.
    trimesters = conn.execute(
        """SELECT trimester, round(sum(amount_sar) / sum(sum(amount_sar)) OVER (), 4)
           FROM efir_budget.revenue_plans WHERE account_code LIKE '701%'
           GROUP BY trimester ORDER BY trimester"""
    ).fetchall()
    assert [(t, float(s)) for t, s in trimesters] == [(1, 0.4), (2, 0.3), (3, 0.3)]
    assert conn.execute(
        """SELECT count(*) FROM efir_budget.revenue_plans
           WHERE (account_code LIKE '701%') <> (trimester IS NOT NULL)"""
    ).fetchone() == (0,)

    # Personnel totals are fte x unit cost.
    assert conn.execute(
        """SELECT count(*) FROM efir_budget.personnel_cost_plans
           WHERE total_cost_sar <> round(fte_count * unit_cost_sar, 2)"""
    ).fetchone() == (0,)
    assert conn.execute(
        """SELECT count(*) FROM efir_budget.capex_plans
           WHERE total_cost_sar <> quantity * unit_cost_sar OR quantity < 1"""
    ).fetchone() == (0,)

    # Consolidation: one row per account, its total, from the plan it comes from.
    mismatches = conn.execute(
        """WITH plans AS (
               SELECT budget_version_id, account_code, amount_sar AS amount, 'revenue_plans' AS src
               FROM efir_budget.revenue_plans
               UNION ALL SELECT budget_version_id, account_code, total_cost_sar, 'personnel_cost_plans'
               FROM efir_budget.personnel_cost_plans
               UNION ALL SELECT budget_version_id, account_code, amount_sar, 'operating_cost_plans'
               FROM efir_budget.operating_cost_plans
               UNION ALL SELECT budget_version_id, account_code, total_cost_sar, 'capex_plans'
               FROM efir_budget.capex_plans
           ), totals AS (
               SELECT budget_version_id, account_code, src, sum(amount) AS amount, count(*) AS n
               FROM plans GROUP BY 1, 2, 3
           )
           SELECT * FROM totals t FULL JOIN efir_budget.budget_consolidations c
               USING (budget_version_id, account_code)
           WHERE c.id IS NULL OR t.src IS NULL OR c.amount_sar <> t.amount
              OR c.source_table <> t.src OR c.source_count <> t.n
              OR c.is_revenue <> (account_code LIKE '7%')"""
    ).fetchall()
    assert mismatches == []
    used = {
        c
        for (c,) in conn.execute(
            "SELECT DISTINCT consolidation_category::text FROM efir_budget.budget_consolidations"
        )
    }
    assert {"revenue_tuition", "revenue_fees", "revenue_other", "personnel_teaching"} <= used
    assert {"personnel_social", "operating_utilities", "capex_it", "capex_software"} <= used
    # Operating and capex lines are consolidated under their own category.
    assert conn.execute(
        """SELECT count(*) FROM efir_budget.budget_consolidations c
           WHERE c.source_table IN ('operating_cost_plans', 'capex_plans')
             AND c.consolidation_category::text <> (
                 SELECT min(CASE c.source_table WHEN 'capex_plans' THEN 'capex_'
                                                ELSE 'operating_' END || p.category)
                 FROM (SELECT budget_version_id, account_code, category
                       FROM efir_budget.operating_cost_plans
                       UNION ALL SELECT budget_version_id, account_code, category
                       FROM efir_budget.capex_plans) p
                 WHERE p.budget_version_id = c.budget_version_id
                   AND p.account_code = c.account_code)"""
    ).fetchone() == (0,)


def test_efir_rows_fill_the_app_columns(conn):
    """The columns the app requires but the views never read hold plausible values."""
    demo_data.load_demo_data(conn)

    # A line is calculated exactly when it names its driver; the consolidation is always.
    for table in ("revenue_plans", "personnel_cost_plans", "operating_cost_plans"):
        assert conn.execute(
            f"""SELECT count(*) FROM efir_budget.{table}
                WHERE is_calculated <> (calculation_driver IS NOT NULL)"""
        ).fetchone() == (0,), table
    # Fixed income (rentals, financial income) is entered by hand, the rest derived.
    manual = {
        code
        for (code,) in conn.execute(
            "SELECT DISTINCT account_code FROM efir_budget.revenue_plans WHERE NOT is_calculated"
        )
    }
    assert manual == {"70821", "76811"}
    assert conn.execute(
        "SELECT bool_and(is_calculated) FROM efir_budget.budget_consolidations"
    ).fetchone() == (True,)
    assert conn.execute(
        "SELECT array_agg(DISTINCT calculation_method) FROM efir_budget.class_structures"
    ).fetchone() == (["max_class_size"],)
    capex = rows_of(
        conn,
        """SELECT category, min(useful_life_years) AS shortest, max(useful_life_years) AS longest
           FROM efir_budget.capex_plans GROUP BY category ORDER BY category""",
    )
    assert [c["category"] for c in capex] == [
        "building",
        "equipment",
        "furniture",
        "it",
        "software",
    ]
    assert all(3 <= c["shortest"] <= c["longest"] <= 20 for c in capex)
    # Every line carries an amount (the app's CHECKs only forbid negative ones).
    negative = conn.execute(
        """SELECT 'revenue' FROM efir_budget.revenue_plans WHERE amount_sar <= 0
           UNION ALL SELECT 'operating' FROM efir_budget.operating_cost_plans WHERE amount_sar <= 0
           UNION ALL SELECT 'personnel' FROM efir_budget.personnel_cost_plans
               WHERE total_cost_sar <= 0 OR unit_cost_sar <= 0 OR fte_count <= 0
           UNION ALL SELECT 'capex' FROM efir_budget.capex_plans WHERE total_cost_sar <= 0
           UNION ALL SELECT 'consolidation' FROM efir_budget.budget_consolidations
               WHERE amount_sar <= 0"""
    ).fetchall()
    assert negative == []


# --------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------


def test_same_seed_gives_identical_rows_and_another_seed_other_data(make_database):
    first, second = make_database(), make_database()
    load(first, seed=42)
    load(second, seed=42, timezone="America/New_York")  # the caller's time zone is no input
    reference = fingerprints(first)
    assert all(n > 0 for n, _ in reference.values())
    assert fingerprints(second) == reference

    # Another seed gives other ids: the school is recognised by its name and replaced.
    load(second, seed=7, replace=True)
    other = fingerprints(second)
    assert other["organizations"][0] == 1
    for table in ALL_TABLES:
        assert other[table][1] != reference[table][1], table
    with psycopg.connect(first) as a, psycopg.connect(second) as b:
        students_a = a.execute(PER_VERSION_SQL).fetchall()
        students_b = b.execute(PER_VERSION_SQL).fetchall()
    assert [r[5] for r in students_a] != [r[5] for r in students_b]


# --------------------------------------------------------------------------------------
# Existing data, replace, one transaction
# --------------------------------------------------------------------------------------


NETWORK_ENROLLMENT = """
SELECT count(*) FROM efir_budget.enrollment_plans e
JOIN efir_budget.budget_versions v ON v.id = e.budget_version_id
JOIN efir_budget.organizations o ON o.id = v.organization_id
WHERE starts_with(o.name, %s)
"""


def test_existing_schools_are_kept_unless_replace(conn):
    # The budget app's own school, with a name of its own: never a demo school.
    app_org = "a0000000-0000-0000-0000-000000000001"
    conn.execute(
        "INSERT INTO efir_budget.organizations (id, name, is_active) VALUES (%s, 'EFIR Riyadh', true)",
        (app_org,),
    )
    demo_data.load_demo_data(conn, orgs=2, versions_per_org=4)  # a small network: SCH0001-2
    first = demo_data.load_demo_data(conn)  # EFIR next to it
    before = {table: count(conn, table) for table in ALL_TABLES}

    with pytest.raises(demo_data.DemoDataExists, match="replace") as raised:
        demo_data.load_demo_data(conn)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, EfirError)
    assert demo_data.EFIR_NAME in str(raised.value)
    assert "EFIR Riyadh" not in str(raised.value)
    assert {table: count(conn, table) for table in ALL_TABLES} == before

    # The user edits EFIR's data; replace brings the demo back, the network untouched.
    conn.execute(
        """UPDATE efir_budget.budget_versions SET deleted_at = now()
           WHERE organization_id = (SELECT id FROM efir_budget.organizations WHERE name = %s)""",
        (demo_data.EFIR_NAME,),
    )
    conn.execute("DELETE FROM efir_budget.capex_plans")
    prefix = (demo_data.NETWORK_NAME_PREFIX,)
    network_before = conn.execute(NETWORK_ENROLLMENT, prefix).fetchone()
    assert network_before[0] > 0
    again = demo_data.load_demo_data(conn, replace=True)
    assert again.rows == first.rows
    assert conn.execute(
        "SELECT count(*) FROM efir_budget.budget_versions WHERE deleted_at IS NOT NULL"
    ).fetchone() == (0,)
    assert count(conn, "capex_plans") == first.rows["capex_plans"]  # only EFIR's came back
    assert count(conn, "organizations") == 4
    assert conn.execute(
        "SELECT name FROM efir_budget.organizations WHERE id = %s", (app_org,)
    ).fetchone() == ("EFIR Riyadh",)
    assert conn.execute(NETWORK_ENROLLMENT, prefix).fetchone() == network_before


def test_a_failed_load_leaves_nothing_behind(conn):
    def interrupt(step: str, index: int, count: int) -> None:
        if step == "capex_plans":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_data.load_demo_data(conn, progress=interrupt)
    assert {table: count(conn, table) for table in ALL_TABLES} == dict.fromkeys(ALL_TABLES, 0)
    assert demo_data.load_demo_data(conn).versions == 10  # and the session is still usable


def test_has_data(conn):
    assert demo_data.has_data(conn) is False
    demo_data.load_demo_data(conn, orgs=2, versions_per_org=1)
    assert demo_data.has_data(conn) is True
    conn.execute("UPDATE efir_budget.budget_versions SET deleted_at = now()")
    assert demo_data.has_data(conn) is False


@pytest.mark.parametrize(
    ("orgs", "versions_per_org"), [(0, None), (-1, 4), (2, 0), (2, 1000), (1.5, None)]
)
def test_bad_arguments_are_refused_before_anything_runs(conn, orgs, versions_per_org):
    with pytest.raises(demo_data.DemoDataError):
        demo_data.load_demo_data(conn, orgs=orgs, versions_per_org=versions_per_org)
    assert count(conn, "organizations") == 0


# --------------------------------------------------------------------------------------
# Network scale
# --------------------------------------------------------------------------------------


def test_small_network(conn):
    summary = demo_data.load_demo_data(conn, orgs=3, versions_per_org=4)

    assert (summary.organizations, summary.versions) == (3, 12)
    names = [n for (n,) in conn.execute("SELECT name FROM efir_budget.organizations ORDER BY 1")]
    assert [n.removeprefix(demo_data.NETWORK_NAME_PREFIX) for n in names] == [
        "Al Khobar (SCH0003)",
        "Dammam (SCH0002)",
        "Djeddah (SCH0001)",
    ]
    per_org = rows_of(
        conn,
        """SELECT o.name, array_agg(v.status::text ORDER BY v.created_at) AS statuses,
                  array_agg(DISTINCT v.fiscal_year) AS years
           FROM efir_budget.organizations o
           JOIN efir_budget.budget_versions v ON v.organization_id = o.id
           GROUP BY o.name ORDER BY o.name""",
    )
    for org in per_org:
        assert org["statuses"] == ["superseded", "approved", "submitted", "working"]
        assert org["years"] == [demo_data.LATEST_FISCAL_YEAR]
    sizes = conn.execute(
        """SELECT o.name, sum(e.student_count) / count(DISTINCT v.id) AS students
           FROM efir_budget.organizations o
           JOIN efir_budget.budget_versions v ON v.organization_id = o.id
           JOIN efir_budget.enrollment_plans e ON e.budget_version_id = v.id
           GROUP BY o.name"""
    ).fetchall()
    assert len({round(s, -1) for _, s in sizes}) == 3  # schools sized differently
    assert all(250 <= s <= 3300 for _, s in sizes)
    assert summary.rows["enrollment_plans"] == 12 * 15 * 3
    assert summary.rows["class_structures"] == 12 * 15


@pytest.mark.parametrize("count_", range(1, 26))
def test_network_versions_keep_one_working_version_per_year(count_):
    specs = demo_data.network_versions(count_)
    assert len(specs) == count_
    assert specs[-1].status == "working"
    assert specs[-1].fiscal_year == demo_data.LATEST_FISCAL_YEAR
    working_years = [s.fiscal_year for s in specs if s.status == "working"]
    assert len(working_years) == len(set(working_years)) == 1
    assert len({(s.fiscal_year, s.slot) for s in specs}) == count_
    assert all(s.created_on.year in (s.fiscal_year, s.fiscal_year + 1) for s in specs)


@pytest.mark.scale
def test_network_scale_load(make_database):
    """600 x 20 is the real network; CI runs it at EFIR_SCALE_ORGS schools (default 20)."""
    orgs = int(os.environ.get("EFIR_SCALE_ORGS", "20"))
    url = make_database()
    summary = load(url, orgs=orgs, versions_per_org=20)
    assert summary.versions == orgs * 20
    assert summary.rows["enrollment_plans"] == orgs * 20 * 45
    assert summary.rows["budget_consolidations"] >= orgs * 20 * 50
    with psycopg.connect(url) as conn:
        years = conn.execute(
            "SELECT array_agg(DISTINCT fiscal_year ORDER BY fiscal_year) FROM efir_budget.budget_versions"
        ).fetchone()[0]
        assert years == [2022, 2023, 2024, 2025, 2026]
        assert conn.execute(
            """SELECT count(*) FROM efir_budget.budget_versions WHERE status = 'working'"""
        ).fetchone() == (orgs,)
        # Every school size stays plausible: thin margins, staffing close to the need.
        per_version = rows_of(conn, PER_VERSION_SQL)
    margins = [
        1 - (v["personnel"] + v["operating"] + v["capex"]) / v["revenue"] for v in per_version
    ]
    assert all(-0.15 <= m <= 0.15 for m in margins)
    assert -0.02 <= sum(margins) / len(margins) <= 0.08
    assert all(0.55 <= v["personnel"] / v["revenue"] <= 0.85 for v in per_version)
    assert all(0.95 <= v["allocated_fte"] / v["required_fte"] <= 1.06 for v in per_version)
    under = sum(v["allocated_fte"] < v["required_fte"] for v in per_version) / len(per_version)
    assert 0.1 <= under <= 0.9  # sometimes under the requirement, not always
