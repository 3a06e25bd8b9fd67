"""Inserts of the running and capital costs: operating cost and capex plans.

Both are sized by the school (students, classes, teachers) at the version's prices;
the AEFE contribution is a share of the tuition the revenue plan bills.
"""

from __future__ import annotations

from psycopg import sql

from efir_pipeline.cli.demo_data.accounts import (
    CAPEX_ACCOUNTS,
    FIXED_COST_ELASTICITY,
    OPERATING_ACCOUNTS,
)
from efir_pipeline.cli.demo_data.schools import EFIR_STUDENTS
from efir_pipeline.cli.demo_data.sqlkit import literal, values


def insert_operating_cost_plans() -> sql.Composable:
    """Operating costs driven by students, classes and tuition (the AEFE contribution).

    The driver named is the variable part of the line; a line with none is fixed
    (entered by hand: is_calculated false).
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.operating_cost_plans
            (id, budget_version_id, account_code, description, category, amount_sar,
             is_calculated, calculation_driver, created_at, updated_at)
        SELECT pg_temp.demo_id('operating_cost_plans:' || k.key),
               b.id, o.account_code, o.description, o.category,
               round(((o.fixed * power(b.students::numeric / {efir_size}, {elasticity})
                       + o.per_student * b.students + o.per_class * b.classes)
                      * b.price_index + o.tuition_share * b.tuition)
                     * pg_temp.demo_jitter(k.key, 0.06), 2),
               k.driver IS NOT NULL, k.driver,
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM (
            SELECT v.id, v.key, v.created_at, v.edit_window, v.price_index,
                   sum(cs.total_students) AS students, sum(cs.number_of_classes) AS classes,
                   (SELECT coalesce(sum(r.amount_sar), 0) FROM efir_budget.revenue_plans AS r
                    WHERE r.budget_version_id = v.id AND r.account_code LIKE '701%'
                      AND r.deleted_at IS NULL) AS tuition
            FROM _demo_versions AS v
            JOIN efir_budget.class_structures AS cs ON cs.budget_version_id = v.id
            WHERE cs.deleted_at IS NULL
            GROUP BY v.id
        ) AS b
        CROSS JOIN {accounts} AS o (account_code, description, category, fixed, per_student,
                                    per_class, tuition_share)
        CROSS JOIN LATERAL (
            SELECT b.key || ':' || o.account_code AS key,
                   CASE WHEN o.tuition_share > 0 THEN 'tuition'
                        WHEN o.per_class > 0 THEN 'classes'
                        WHEN o.per_student > 0 THEN 'enrollment'
                   END AS driver
        ) AS k
        """
    ).format(
        accounts=values(
            OPERATING_ACCOUNTS,
            casts=("text", "text", "text", "numeric", "numeric", "numeric", "numeric"),
        ),
        efir_size=literal(EFIR_STUDENTS),
        elasticity=literal(FIXED_COST_ELASTICITY),
    )


# Per version: the quantities capex lines are sized by.
_CAPEX_BASES = """
    SELECT v.id, v.key, v.fiscal_year, v.created_at, v.edit_window, v.price_index,
           sum(cs.total_students) AS students, sum(cs.number_of_classes) AS classes,
           coalesce(sum(cs.number_of_classes) FILTER (WHERE l.is_secondary), 0)
               AS secondary_classes,
           (SELECT coalesce(sum(a.fte_count), 0) FROM efir_budget.teacher_allocations AS a
            WHERE a.budget_version_id = v.id AND a.deleted_at IS NULL) AS teachers
    FROM _demo_versions AS v
    JOIN efir_budget.class_structures AS cs ON cs.budget_version_id = v.id
    JOIN efir_budget.academic_levels AS l ON l.id = cs.level_id
    WHERE cs.deleted_at IS NULL
    GROUP BY v.id
"""


def insert_capex_plans() -> sql.Composable:
    """Equipment bought in the summer before the school year, sized by the school.

    Quantities are at least 1 (a line exists because something is bought).
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.capex_plans
            (id, budget_version_id, account_code, description, category, quantity,
             unit_cost_sar, total_cost_sar, acquisition_date, useful_life_years,
             created_at, updated_at)
        SELECT pg_temp.demo_id('capex_plans:' || k.key),
               b.id, x.account_code, x.description, x.category, k.quantity, k.unit_cost,
               k.quantity * k.unit_cost,
               make_date(b.fiscal_year, x.month, 1)
                   + floor(pg_temp.demo_unit(k.key || ':date') * 28)::integer,
               x.useful_life_years,
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM ({bases}) AS b
        CROSS JOIN {accounts} AS x (account_code, description, category, basis, base_quantity,
                                    per_basis, unit_cost, useful_life_years, month)
        CROSS JOIN LATERAL (SELECT b.key || ':' || x.account_code AS key) AS kk
        CROSS JOIN LATERAL (
            SELECT kk.key,
                   greatest(1, round((x.base_quantity + x.per_basis
                                      * CASE x.basis WHEN 'classes' THEN b.classes
                                                     WHEN 'secondary_classes'
                                                         THEN b.secondary_classes
                                                     WHEN 'teachers' THEN b.teachers
                                                     ELSE b.students END)
                                     * pg_temp.demo_jitter(kk.key || ':quantity', 0.25)))::integer
                       AS quantity,
                   round(x.unit_cost * b.price_index
                         * pg_temp.demo_jitter(kk.key || ':cost', 0.05), 2) AS unit_cost
        ) AS k
        """
    ).format(
        bases=sql.SQL(_CAPEX_BASES),
        accounts=values(
            CAPEX_ACCOUNTS,
            casts=("text", "text", "text", "text", "numeric", "numeric", "numeric", "int", "int"),
        ),
    )
