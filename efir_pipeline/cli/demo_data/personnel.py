"""Insert of the personnel cost plan: teachers, other staff, then the social charges on both.

Three kinds of lines, one statement: teaching salaries from the teacher allocations
(one line per category and cycle), non-teaching staff from the school's size, and
social charges on the FTE they cover (local staff, all staff or AEFE teachers). Every
line is fte x unit cost, at the version's prices.
"""

from __future__ import annotations

from psycopg import sql

from efir_pipeline.cli.demo_data.accounts import (
    FIXED_COST_ELASTICITY,
    SOCIAL_ACCOUNTS,
    STAFF_ACCOUNTS,
)
from efir_pipeline.cli.demo_data.curriculum import CYCLES, TEACHER_CATEGORIES
from efir_pipeline.cli.demo_data.schools import EFIR_STUDENTS
from efir_pipeline.cli.demo_data.sqlkit import literal, values

# Each CTE yields (budget_version_id, account_code, description, category_id, cycle_id,
# line, is_aefe, fte, unit_cost, driver); ``line`` tells the lines of an account apart.
_TEACHING = """
    SELECT a.budget_version_id, tcost.account_code,
           'Rémunérations enseignants - ' || tc.name_fr AS description,
           tc.id AS category_id, c.id AS cycle_id, tc.code || ':' || c.code AS line,
           tc.is_aefe, sum(a.fte_count) AS fte,
           coalesce(tcost.unit_cost, p.local_salary) AS unit_cost,
           'teacher allocations' AS driver
    FROM efir_budget.teacher_allocations AS a
    JOIN _demo_versions AS v ON v.id = a.budget_version_id
    JOIN efir_budget.teacher_categories AS tc ON tc.id = a.category_id
    JOIN {categories} AS tcost (code, account_code, unit_cost) ON tcost.code = tc.code
    JOIN efir_budget.academic_cycles AS c ON c.id = a.cycle_id
    JOIN {cycles} AS p (code, local_salary) ON p.code = c.code
    WHERE a.deleted_at IS NULL
    GROUP BY a.budget_version_id, tcost.account_code, tc.id, tc.name_fr, tc.code,
             tc.is_aefe, c.id, c.code, tcost.unit_cost, p.local_salary
"""
# Staff FTE rounded to half posts; ATSEM: one per maternelle class.
_STAFF = """
    SELECT z.budget_version_id, s.account_code, s.description,
           NULL::uuid AS category_id, NULL::uuid AS cycle_id, '' AS line, false AS is_aefe,
           CASE WHEN s.students_per_fte IS NULL THEN z.atsem
                ELSE round((s.base_fte * power(z.students::numeric / {efir_size}, {elasticity})
                            + z.students / s.students_per_fte) * 2
                           * pg_temp.demo_jitter(v.key || ':' || s.account_code, 0.05)) / 2
           END AS fte,
           s.unit_cost,
           CASE WHEN s.students_per_fte IS NULL THEN 'maternelle classes'
                ELSE 'enrollment' END AS driver
    FROM (
        SELECT cs.budget_version_id, sum(cs.total_students) AS students,
               sum(cs.atsem_count) AS atsem
        FROM efir_budget.class_structures AS cs
        JOIN _demo_versions AS v ON v.id = cs.budget_version_id
        WHERE cs.deleted_at IS NULL
        GROUP BY cs.budget_version_id
    ) AS z
    JOIN _demo_versions AS v ON v.id = z.budget_version_id
    CROSS JOIN {staff} AS s (account_code, description, base_fte, students_per_fte, unit_cost)
"""
_SOCIAL = """
    SELECT e.budget_version_id, s.account_code, s.description,
           NULL::uuid AS category_id, NULL::uuid AS cycle_id, '' AS line, false AS is_aefe,
           sum(e.fte) FILTER (WHERE CASE s.basis WHEN 'local' THEN NOT e.is_aefe
                                                  WHEN 'aefe' THEN e.is_aefe
                                                  ELSE true END) AS fte,
           s.unit_cost, 'covered FTE (' || s.basis || ')' AS driver
    FROM employed AS e
    CROSS JOIN {social} AS s (account_code, description, basis, unit_cost)
    GROUP BY e.budget_version_id, s.account_code, s.description, s.basis, s.unit_cost
"""


def insert_personnel_cost_plans() -> sql.Composable:
    """Teaching salaries from the allocations, staff from the school's size, then charges."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.personnel_cost_plans
            (id, budget_version_id, account_code, description, category_id, cycle_id,
             fte_count, unit_cost_sar, total_cost_sar, is_calculated, calculation_driver,
             created_at, updated_at)
        WITH employed AS (
            {teaching} UNION ALL {staff}
        ), lines AS (
            SELECT * FROM employed UNION ALL {social}
        )
        SELECT pg_temp.demo_id('personnel_cost_plans:' || k.key),
               v.id, l.account_code, l.description, l.category_id, l.cycle_id,
               l.fte, k.unit_cost, round(l.fte * k.unit_cost, 2), true, l.driver,
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM lines AS l
        JOIN _demo_versions AS v ON v.id = l.budget_version_id
        CROSS JOIN LATERAL (
            SELECT v.key || ':' || l.account_code || ':' || l.line AS key,
                   round(l.unit_cost * v.price_index
                         * pg_temp.demo_jitter(v.key || ':' || l.account_code || ':' || l.line
                                               || ':cost', 0.02), 2) AS unit_cost
        ) AS k
        WHERE l.fte > 0
        """
    ).format(
        teaching=sql.SQL(_TEACHING).format(
            categories=values(
                ((code, account, cost) for code, (account, cost) in TEACHER_CATEGORIES.items()),
                casts=("text", "text", "numeric"),
            ),
            cycles=values((code, c.local_salary_sar) for code, c in CYCLES.items()),
        ),
        staff=sql.SQL(_STAFF).format(
            staff=values(STAFF_ACCOUNTS, casts=("text", "text", "numeric", "numeric", "numeric")),
            efir_size=literal(EFIR_STUDENTS),
            elasticity=literal(FIXED_COST_ELASTICITY),
        ),
        social=sql.SQL(_SOCIAL).format(social=values(SOCIAL_ACCOUNTS)),
    )
