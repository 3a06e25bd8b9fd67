"""Insert of the budget consolidation: one row per (version, account), as the app computes it.

The consolidation is the total of the plan lines booked on an account, so it is derived
last, from the plan tables themselves. Its category follows the PCG: the account class
for revenue (701 tuition, 702/703 fees, other 7) and personnel (6411 teaching, 6412
administration, 6413 support, 645 social charges); the plan line's own category for
operating costs and capex.
"""

from __future__ import annotations

from psycopg import sql

_CATEGORY = """
    CASE
        WHEN t.account_code LIKE '701%' THEN 'revenue_tuition'
        WHEN t.account_code LIKE '702%' OR t.account_code LIKE '703%' THEN 'revenue_fees'
        WHEN t.account_code LIKE '7%' THEN 'revenue_other'
        WHEN t.account_code LIKE '6411%' THEN 'personnel_teaching'
        WHEN t.account_code LIKE '6412%' THEN 'personnel_admin'
        WHEN t.account_code LIKE '6413%' THEN 'personnel_support'
        WHEN t.account_code LIKE '645%' THEN 'personnel_social'
        WHEN t.source_table = 'operating_cost_plans' THEN 'operating_' || t.category
        ELSE 'capex_' || t.category
    END::efir_budget.consolidationcategory
"""
# Live plan lines of the versions being loaded, one shape for the four plan tables.
_PLAN_LINES = """
    SELECT budget_version_id, account_code, description, NULL AS category,
           amount_sar AS amount, 'revenue_plans' AS source_table
    FROM efir_budget.revenue_plans WHERE deleted_at IS NULL
    UNION ALL
    SELECT budget_version_id, account_code, description, NULL,
           total_cost_sar, 'personnel_cost_plans'
    FROM efir_budget.personnel_cost_plans WHERE deleted_at IS NULL
    UNION ALL
    SELECT budget_version_id, account_code, description, category,
           amount_sar, 'operating_cost_plans'
    FROM efir_budget.operating_cost_plans WHERE deleted_at IS NULL
    UNION ALL
    SELECT budget_version_id, account_code, description, category,
           total_cost_sar, 'capex_plans'
    FROM efir_budget.capex_plans WHERE deleted_at IS NULL
"""


def insert_budget_consolidations() -> sql.Composable:
    """One row per (version, account): the total of the plan lines booked on it."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.budget_consolidations
            (id, budget_version_id, account_code, account_name, consolidation_category,
             is_revenue, amount_sar, source_table, source_count, is_calculated,
             created_at, updated_at)
        SELECT pg_temp.demo_id('budget_consolidations:' || k.key),
               v.id, t.account_code, t.account_name, {category},
               t.account_code LIKE '7%', t.amount, t.source_table, t.source_count, true,
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM (
            SELECT p.budget_version_id, p.account_code, p.source_table,
                   min(p.description) AS account_name, min(p.category) AS category,
                   sum(p.amount) AS amount, count(*) AS source_count
            FROM ({plan_lines}) AS p
            JOIN _demo_versions AS dv ON dv.id = p.budget_version_id
            GROUP BY p.budget_version_id, p.account_code, p.source_table
        ) AS t
        JOIN _demo_versions AS v ON v.id = t.budget_version_id
        CROSS JOIN LATERAL (SELECT v.key || ':' || t.account_code AS key) AS k
        """
    ).format(category=sql.SQL(_CATEGORY), plan_lines=sql.SQL(_PLAN_LINES))
