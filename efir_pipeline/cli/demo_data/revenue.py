"""Insert of the revenue plan: tuition by tariff, enrollment fees and other income."""

from __future__ import annotations

from psycopg import sql

from efir_pipeline.cli.demo_data.accounts import REVENUE_ACCOUNTS, REVENUE_DRIVERS
from efir_pipeline.cli.demo_data.curriculum import CYCLES, EXAM_LEVELS, NATIONALITIES
from efir_pipeline.cli.demo_data.schools import EFIR_STUDENTS
from efir_pipeline.cli.demo_data.sqlkit import literal, literals, values

# Per version: students, new students (15-22 %), exam candidates and the tuition billed.
_BASES = """
    SELECT v.id, v.key, v.created_at, v.edit_window, v.price_index,
           sum(e.student_count)::numeric AS students,
           round(sum(e.student_count) * (0.15 + 0.07 * pg_temp.demo_unit(v.key || ':new'))::numeric)
               AS new_students,
           coalesce(sum(e.student_count) FILTER (WHERE l.code IN ({exam_levels})), 0)
               AS exam_students,
           sum(e.student_count * t.tuition_sar * nt.factor) * v.price_index * v.tariff
               AS tuition
    FROM _demo_versions AS v
    JOIN efir_budget.enrollment_plans AS e ON e.budget_version_id = v.id
    JOIN efir_budget.academic_levels AS l ON l.id = e.level_id
    JOIN efir_budget.academic_cycles AS c ON c.id = l.cycle_id
    JOIN {tuition} AS t (code, tuition_sar) ON t.code = c.code
    JOIN efir_budget.nationality_types AS n ON n.id = e.nationality_type_id
    JOIN {nationality_factors} AS nt (code, factor) ON nt.code = n.code
    WHERE e.deleted_at IS NULL
    GROUP BY v.id
"""


def insert_revenue_plans() -> sql.Composable:
    """One line per revenue account: rate x its basis; tuition billed 40/30/30 by trimester."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.revenue_plans
            (id, budget_version_id, account_code, description, category, amount_sar,
             is_calculated, calculation_driver, trimester, created_at, updated_at)
        SELECT pg_temp.demo_id('revenue_plans:' || k.key),
               b.id, r.account_code, r.description, r.category,
               round(CASE r.basis
                         WHEN 'tuition' THEN b.tuition * r.rate
                         ELSE r.rate * b.price_index * pg_temp.demo_jitter(k.key, 0.03)
                              * CASE r.basis
                                    WHEN 'students' THEN b.students
                                    WHEN 'new_students' THEN b.new_students
                                    WHEN 'returning_students' THEN b.students - b.new_students
                                    WHEN 'exam_students' THEN b.exam_students
                                    WHEN 'size' THEN b.students / {reference_size}
                                END
                     END, 2),
               d.driver IS NOT NULL, d.driver, r.trimester,
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM ({bases}) AS b
        CROSS JOIN {accounts} AS r (account_code, description, category, trimester, basis, rate)
        JOIN {drivers} AS d (basis, driver) ON d.basis = r.basis
        CROSS JOIN LATERAL (SELECT b.key || ':' || r.account_code AS key) AS k
        """
    ).format(
        bases=sql.SQL(_BASES).format(
            exam_levels=literals(EXAM_LEVELS),
            tuition=values((code, c.tuition_sar) for code, c in CYCLES.items()),
            nationality_factors=values((code, f) for code, (_, f) in NATIONALITIES.items()),
        ),
        reference_size=literal(EFIR_STUDENTS),
        accounts=values(REVENUE_ACCOUNTS, casts=("text", "text", "text", "int", "text", "numeric")),
        drivers=values(REVENUE_DRIVERS.items(), casts=("text", "text")),
    )
