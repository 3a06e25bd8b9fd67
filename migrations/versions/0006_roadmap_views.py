"""Roadmap views: enrollment trends, financial ratios, workforce utilization.

Built like 0003: a plain ``v_*`` view holds the defining query and the materialized
``mv_*`` is ``SELECT * FROM v_*`` with a plain unique index, every view and column
commented. Definitions: docs/views.md.

``v_financial_ratios`` reads the *materialized* ``mv_kpi_dashboard`` for the version
totals. PostgreSQL records that in pg_depend, the catalog declares it
(``depends_on``), and refreshes run mv_kpi_dashboard first.

Revision ID: 0006_roadmap_views
Revises: 0005_health
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements

revision: str = "0006_roadmap_views"
down_revision: str | None = "0005_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The approved version of (organization, fiscal year): latest approved_at (NULL last),
# then latest updated_at, then greatest id. Enrollment is aggregated for those versions
# only, then joined onto the dense grid of live levels x live nationalities.
ENROLLMENT_TRENDS_SQL = """
CREATE VIEW efir_budget.v_enrollment_trends AS
WITH approved AS (
    SELECT DISTINCT ON (v.organization_id, v.fiscal_year)
           v.id AS budget_version_id,
           v.organization_id,
           v.fiscal_year,
           v.academic_year,
           v.name AS version_name,
           v.approved_at
    FROM efir_budget.budget_versions v
    WHERE v.deleted_at IS NULL AND v.status = 'approved'
    ORDER BY v.organization_id, v.fiscal_year,
             v.approved_at DESC NULLS LAST, v.updated_at DESC, v.id DESC
), enrollment AS (
    SELECT e.budget_version_id, e.level_id, e.nationality_type_id,
           sum(e.student_count) AS student_count
    FROM efir_budget.enrollment_plans e
    WHERE e.deleted_at IS NULL
      AND e.budget_version_id IN (SELECT budget_version_id FROM approved)
    GROUP BY e.budget_version_id, e.level_id, e.nationality_type_id
), grid AS (
    SELECT a.budget_version_id, a.organization_id, a.fiscal_year, a.academic_year,
           a.version_name, a.approved_at,
           l.id AS level_id, l.code AS level_code, l.sort_order AS level_sort_order,
           c.code AS cycle_code,
           n.id AS nationality_type_id, n.code AS nationality_code
    FROM approved a
    CROSS JOIN efir_budget.academic_levels l
    CROSS JOIN efir_budget.nationality_types n
    LEFT JOIN efir_budget.academic_cycles c ON c.id = l.cycle_id AND c.deleted_at IS NULL
    WHERE l.deleted_at IS NULL AND n.deleted_at IS NULL
), counts AS (
    SELECT g.*,
           coalesce(cur.student_count, 0) AS student_count,
           p.budget_version_id AS previous_budget_version_id,
           CASE WHEN p.budget_version_id IS NOT NULL
                THEN coalesce(prev.student_count, 0) END AS previous_student_count
    FROM grid g
    LEFT JOIN enrollment cur
           ON cur.budget_version_id = g.budget_version_id
          AND cur.level_id = g.level_id
          AND cur.nationality_type_id = g.nationality_type_id
    LEFT JOIN approved p
           ON p.organization_id = g.organization_id AND p.fiscal_year = g.fiscal_year - 1
    LEFT JOIN enrollment prev
           ON prev.budget_version_id = p.budget_version_id
          AND prev.level_id = g.level_id
          AND prev.nationality_type_id = g.nationality_type_id
)
SELECT budget_version_id,
       level_id,
       nationality_type_id,
       organization_id,
       fiscal_year,
       academic_year,
       version_name,
       approved_at,
       cycle_code,
       level_code,
       level_sort_order,
       nationality_code,
       student_count,
       previous_budget_version_id,
       previous_student_count,
       student_count - previous_student_count AS yoy_change,
       round((student_count - previous_student_count)::numeric
             / nullif(previous_student_count, 0) * 100, 2) AS yoy_change_percent
FROM counts
"""

# Version totals come from the materialized KPI view; the per-cycle split is aggregated
# here from the raw tables, each table on its own before the join.
FINANCIAL_RATIOS_SQL = """
CREATE VIEW efir_budget.v_financial_ratios AS
WITH students AS (
    SELECT e.budget_version_id,
           sum(e.student_count) FILTER (WHERE c.code = 'MAT')  AS mat_students,
           sum(e.student_count) FILTER (WHERE c.code = 'ELEM') AS elem_students,
           sum(e.student_count) FILTER (WHERE c.code = 'COLL') AS coll_students,
           sum(e.student_count) FILTER (WHERE c.code = 'LYC')  AS lyc_students
    FROM efir_budget.enrollment_plans e
    JOIN efir_budget.academic_levels l ON l.id = e.level_id AND l.deleted_at IS NULL
    JOIN efir_budget.academic_cycles c ON c.id = l.cycle_id AND c.deleted_at IS NULL
    WHERE e.deleted_at IS NULL
    GROUP BY e.budget_version_id
), personnel AS (
    SELECT p.budget_version_id,
           sum(p.total_cost_sar) FILTER (WHERE c.code = 'MAT')  AS mat_cost,
           sum(p.total_cost_sar) FILTER (WHERE c.code = 'ELEM') AS elem_cost,
           sum(p.total_cost_sar) FILTER (WHERE c.code = 'COLL') AS coll_cost,
           sum(p.total_cost_sar) FILTER (WHERE c.code = 'LYC')  AS lyc_cost,
           sum(p.total_cost_sar) FILTER (WHERE c.code IS NULL
                                            OR c.code NOT IN ('MAT', 'ELEM', 'COLL', 'LYC'))
               AS unallocated_cost
    FROM efir_budget.personnel_cost_plans p
    LEFT JOIN efir_budget.academic_cycles c ON c.id = p.cycle_id AND c.deleted_at IS NULL
    WHERE p.deleted_at IS NULL
    GROUP BY p.budget_version_id
), totals AS (
    SELECT k.budget_version_id,
           k.organization_id,
           k.version_name,
           k.fiscal_year,
           k.status,
           k.total_revenue_sar,
           k.tuition_revenue_sar,
           k.fees_revenue_sar,
           k.other_revenue_sar,
           k.total_personnel_costs_sar,
           k.total_operating_costs_sar,
           k.total_capex_sar,
           k.total_personnel_costs_sar + k.total_operating_costs_sar + k.total_capex_sar
               AS total_expenses_sar,
           k.net_budget_sar,
           k.budget_margin_percent,
           k.total_students,
           coalesce(s.mat_students, 0)  AS mat_students,
           coalesce(s.elem_students, 0) AS elem_students,
           coalesce(s.coll_students, 0) AS coll_students,
           coalesce(s.lyc_students, 0)  AS lyc_students,
           coalesce(p.mat_cost, 0)         AS mat_cost,
           coalesce(p.elem_cost, 0)        AS elem_cost,
           coalesce(p.coll_cost, 0)        AS coll_cost,
           coalesce(p.lyc_cost, 0)         AS lyc_cost,
           coalesce(p.unallocated_cost, 0) AS unallocated_cost
    FROM efir_budget.mv_kpi_dashboard k
    LEFT JOIN students  s ON s.budget_version_id = k.budget_version_id
    LEFT JOIN personnel p ON p.budget_version_id = k.budget_version_id
)
SELECT budget_version_id,
       organization_id,
       version_name,
       fiscal_year,
       status,
       total_revenue_sar,
       tuition_revenue_sar,
       fees_revenue_sar,
       other_revenue_sar,
       round(tuition_revenue_sar / nullif(total_revenue_sar, 0) * 100, 2) AS tuition_share_percent,
       round(fees_revenue_sar / nullif(total_revenue_sar, 0) * 100, 2)    AS fees_share_percent,
       round(other_revenue_sar / nullif(total_revenue_sar, 0) * 100, 2)   AS other_revenue_share_percent,
       total_personnel_costs_sar,
       total_operating_costs_sar,
       total_capex_sar,
       round(total_expenses_sar, 2)                                              AS total_expenses_sar,
       round(total_personnel_costs_sar / nullif(total_expenses_sar, 0) * 100, 2) AS personnel_share_percent,
       round(total_operating_costs_sar / nullif(total_expenses_sar, 0) * 100, 2) AS operating_share_percent,
       round(total_capex_sar / nullif(total_expenses_sar, 0) * 100, 2)           AS capex_share_percent,
       net_budget_sar,
       budget_margin_percent,
       total_students,
       mat_students,
       elem_students,
       coll_students,
       lyc_students,
       round(mat_cost, 2)         AS mat_personnel_cost_sar,
       round(elem_cost, 2)        AS elem_personnel_cost_sar,
       round(coll_cost, 2)        AS coll_personnel_cost_sar,
       round(lyc_cost, 2)         AS lyc_personnel_cost_sar,
       round(unallocated_cost, 2) AS unallocated_personnel_cost_sar,
       round(mat_cost / nullif(mat_students, 0), 2)   AS mat_personnel_cost_per_student_sar,
       round(elem_cost / nullif(elem_students, 0), 2) AS elem_personnel_cost_per_student_sar,
       round(coll_cost / nullif(coll_students, 0), 2) AS coll_personnel_cost_per_student_sar,
       round(lyc_cost / nullif(lyc_students, 0), 2)   AS lyc_personnel_cost_per_student_sar,
       round(total_expenses_sar / nullif(total_students, 0), 2) AS total_cost_per_student_sar
FROM totals
"""

# Requirements and allocations are aggregated per (version, subject) on their own, then
# FULL OUTER joined: a subject with only one side keeps its row, with 0 on the other.
WORKFORCE_UTILIZATION_SQL = """
CREATE VIEW efir_budget.v_workforce_utilization AS
WITH requirements AS (
    SELECT budget_version_id, subject_id,
           sum(total_hours_per_week) AS total_hours_per_week,
           sum(simple_fte)           AS simple_fte,
           sum(rounded_fte)          AS rounded_fte,
           sum(hsa_hours)            AS hsa_hours
    FROM efir_budget.dhg_teacher_requirements
    WHERE deleted_at IS NULL
    GROUP BY budget_version_id, subject_id
), allocations AS (
    SELECT a.budget_version_id, a.subject_id,
           sum(a.fte_count) FILTER (WHERE c.code = 'AEFE_DETACHED') AS aefe_detached_fte,
           sum(a.fte_count) FILTER (WHERE c.code = 'AEFE_FUNDED')   AS aefe_funded_fte,
           sum(a.fte_count) FILTER (WHERE c.code = 'LOCAL')         AS local_fte,
           sum(a.fte_count)                                         AS total_allocated_fte
    FROM efir_budget.teacher_allocations a
    LEFT JOIN efir_budget.teacher_categories c ON c.id = a.category_id AND c.deleted_at IS NULL
    WHERE a.deleted_at IS NULL
    GROUP BY a.budget_version_id, a.subject_id
), pairs AS (
    SELECT coalesce(r.budget_version_id, a.budget_version_id) AS budget_version_id,
           coalesce(r.subject_id, a.subject_id)               AS subject_id,
           coalesce(r.total_hours_per_week, 0) AS total_hours_per_week,
           coalesce(r.simple_fte, 0)           AS simple_fte,
           coalesce(r.rounded_fte, 0)          AS rounded_fte,
           coalesce(r.hsa_hours, 0)            AS hsa_hours,
           coalesce(a.aefe_detached_fte, 0)    AS aefe_detached_fte,
           coalesce(a.aefe_funded_fte, 0)      AS aefe_funded_fte,
           coalesce(a.local_fte, 0)            AS local_fte,
           coalesce(a.total_allocated_fte, 0)  AS total_allocated_fte
    FROM requirements r
    FULL JOIN allocations a
           ON a.budget_version_id = r.budget_version_id AND a.subject_id = r.subject_id
)
SELECT p.budget_version_id,
       p.subject_id,
       v.organization_id,
       v.name AS version_name,
       v.fiscal_year,
       v.status,
       s.code     AS subject_code,
       s.name_en  AS subject_name,
       s.category AS subject_category,
       p.total_hours_per_week,
       p.simple_fte,
       p.rounded_fte,
       p.hsa_hours,
       round(p.hsa_hours / nullif(p.total_hours_per_week, 0) * 100, 2) AS hsa_share_percent,
       p.aefe_detached_fte,
       p.aefe_funded_fte,
       p.local_fte,
       p.total_allocated_fte,
       p.total_allocated_fte - p.simple_fte AS fte_gap,
       round(p.simple_fte / nullif(p.total_allocated_fte, 0) * 100, 2) AS utilization_percent
FROM pairs p
JOIN efir_budget.budget_versions v ON v.id = p.budget_version_id AND v.deleted_at IS NULL
LEFT JOIN efir_budget.subjects s ON s.id = p.subject_id AND s.deleted_at IS NULL
"""

ENROLLMENT_TRENDS_COMMENT = (
    "Enrollment trends: one row per (approved version of an organization and fiscal year, "
    "level, nationality); students and the change vs fiscal_year - 1's approved version."
)
FINANCIAL_RATIOS_COMMENT = (
    "Financial ratios: one row per non-deleted budget version (reads mv_kpi_dashboard); "
    "revenue mix, cost shares, margin, personnel cost per student by cycle."
)
WORKFORCE_UTILIZATION_COMMENT = (
    "Workforce utilization: one row per (non-deleted budget version, subject); DHG hours "
    "required vs teacher FTE allocated by category, HSA share, gap."
)

ENROLLMENT_TRENDS_COLUMNS = {
    "budget_version_id": "The approved version of (organization_id, fiscal_year): non-deleted, "
    "status approved, latest approved_at (NULL last), then updated_at, then id. Key, with "
    "level_id and nationality_type_id.",
    "level_id": "The level (non-deleted academic_levels row). Key part.",
    "nationality_type_id": "The nationality type (non-deleted nationality_types row). Key part.",
    "organization_id": "The school owning the version.",
    "fiscal_year": "budget_versions.fiscal_year of the approved version.",
    "academic_year": "budget_versions.academic_year of the approved version.",
    "version_name": "budget_versions.name of the approved version.",
    "approved_at": "budget_versions.approved_at of the approved version.",
    "cycle_code": "academic_cycles.code of the level's cycle (NULL if soft-deleted).",
    "level_code": "academic_levels.code, PS to TLE.",
    "level_sort_order": "academic_levels.sort_order (order levels by it).",
    "nationality_code": "nationality_types.code: FRENCH, SAUDI or OTHER.",
    "student_count": "Sum of enrollment_plans.student_count of this version, level and "
    "nationality; 0 when none.",
    "previous_budget_version_id": "The approved version of (organization_id, fiscal_year - 1); "
    "NULL when that year has none.",
    "previous_student_count": "student_count of the same level and nationality in "
    "previous_budget_version_id (0 without a row); NULL without a previous approved version.",
    "yoy_change": "student_count - previous_student_count; NULL without a previous approved version.",
    "yoy_change_percent": "yoy_change / previous_student_count * 100, 2 decimals; NULL when "
    "previous_student_count is NULL or 0.",
}

FINANCIAL_RATIOS_COLUMNS = {
    "budget_version_id": "The budget version (one row per mv_kpi_dashboard row).",
    "organization_id": "The school owning the version.",
    "version_name": "budget_versions.name.",
    "fiscal_year": "budget_versions.fiscal_year.",
    "status": "budget_versions.status.",
    "total_revenue_sar": "mv_kpi_dashboard.total_revenue_sar.",
    "tuition_revenue_sar": "mv_kpi_dashboard.tuition_revenue_sar (accounts 701*).",
    "fees_revenue_sar": "mv_kpi_dashboard.fees_revenue_sar (accounts 702*, 703*).",
    "other_revenue_sar": "mv_kpi_dashboard.other_revenue_sar.",
    "tuition_share_percent": "tuition_revenue_sar / total_revenue_sar * 100, 2 decimals; "
    "NULL without revenue.",
    "fees_share_percent": "fees_revenue_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "other_revenue_share_percent": "other_revenue_sar / total_revenue_sar * 100, 2 decimals; "
    "NULL without revenue.",
    "total_personnel_costs_sar": "mv_kpi_dashboard.total_personnel_costs_sar.",
    "total_operating_costs_sar": "mv_kpi_dashboard.total_operating_costs_sar.",
    "total_capex_sar": "mv_kpi_dashboard.total_capex_sar.",
    "total_expenses_sar": "total_personnel_costs_sar + total_operating_costs_sar + total_capex_sar.",
    "personnel_share_percent": "total_personnel_costs_sar / total_expenses_sar * 100, 2 decimals; "
    "NULL without expenses.",
    "operating_share_percent": "total_operating_costs_sar / total_expenses_sar * 100, 2 decimals; "
    "NULL without expenses.",
    "capex_share_percent": "total_capex_sar / total_expenses_sar * 100, 2 decimals; NULL without expenses.",
    "net_budget_sar": "mv_kpi_dashboard.net_budget_sar (total_revenue_sar - total_expenses_sar).",
    "budget_margin_percent": "mv_kpi_dashboard.budget_margin_percent (net / revenue * 100).",
    "total_students": "mv_kpi_dashboard.total_students.",
    "mat_students": "Students of the levels of cycle MAT (enrollment_plans).",
    "elem_students": "Students of the levels of cycle ELEM (enrollment_plans).",
    "coll_students": "Students of the levels of cycle COLL (enrollment_plans).",
    "lyc_students": "Students of the levels of cycle LYC (enrollment_plans).",
    "mat_personnel_cost_sar": "personnel_cost_plans.total_cost_sar with cycle MAT, SAR.",
    "elem_personnel_cost_sar": "personnel_cost_plans.total_cost_sar with cycle ELEM, SAR.",
    "coll_personnel_cost_sar": "personnel_cost_plans.total_cost_sar with cycle COLL, SAR.",
    "lyc_personnel_cost_sar": "personnel_cost_plans.total_cost_sar with cycle LYC, SAR.",
    "unallocated_personnel_cost_sar": "personnel_cost_plans.total_cost_sar without a cycle (or with "
    "a soft-deleted one): not spread over the cycles, SAR.",
    "mat_personnel_cost_per_student_sar": "mat_personnel_cost_sar / mat_students, 2 decimals; "
    "NULL without students.",
    "elem_personnel_cost_per_student_sar": "elem_personnel_cost_sar / elem_students, 2 decimals; "
    "NULL without students.",
    "coll_personnel_cost_per_student_sar": "coll_personnel_cost_sar / coll_students, 2 decimals; "
    "NULL without students.",
    "lyc_personnel_cost_per_student_sar": "lyc_personnel_cost_sar / lyc_students, 2 decimals; "
    "NULL without students.",
    "total_cost_per_student_sar": "total_expenses_sar / total_students, 2 decimals; NULL without students.",
}

WORKFORCE_UTILIZATION_COLUMNS = {
    "budget_version_id": "The budget version (non-deleted). Key, with subject_id.",
    "subject_id": "The subject. Key, with budget_version_id.",
    "organization_id": "The school owning the version.",
    "version_name": "budget_versions.name.",
    "fiscal_year": "budget_versions.fiscal_year.",
    "status": "budget_versions.status.",
    "subject_code": "subjects.code (NULL if the subject is soft-deleted).",
    "subject_name": "subjects.name_en (NULL if the subject is soft-deleted).",
    "subject_category": "subjects.category (NULL if the subject is soft-deleted).",
    "total_hours_per_week": "Sum of dhg_teacher_requirements.total_hours_per_week; 0 without a requirement.",
    "simple_fte": "Sum of dhg_teacher_requirements.simple_fte (FTE required); 0 without a requirement.",
    "rounded_fte": "Sum of dhg_teacher_requirements.rounded_fte; 0 without a requirement.",
    "hsa_hours": "Sum of dhg_teacher_requirements.hsa_hours (overtime); 0 without a requirement.",
    "hsa_share_percent": "hsa_hours / total_hours_per_week * 100, 2 decimals; NULL without hours.",
    "aefe_detached_fte": "Sum of teacher_allocations.fte_count, category AEFE_DETACHED.",
    "aefe_funded_fte": "Sum of teacher_allocations.fte_count, category AEFE_FUNDED.",
    "local_fte": "Sum of teacher_allocations.fte_count, category LOCAL.",
    "total_allocated_fte": "Sum of all teacher_allocations.fte_count of the subject.",
    "fte_gap": "total_allocated_fte - simple_fte (negative = teachers missing).",
    "utilization_percent": "simple_fte / total_allocated_fte * 100, 2 decimals (> 100 = "
    "under-staffed); NULL without allocated FTE.",
}

VIEWS = (
    (
        "enrollment_trends",
        ENROLLMENT_TRENDS_SQL,
        ENROLLMENT_TRENDS_COMMENT,
        ENROLLMENT_TRENDS_COLUMNS,
        [
            "CREATE UNIQUE INDEX uq_mv_enrollment_trends_key ON efir_budget.mv_enrollment_trends "
            "(budget_version_id, level_id, nationality_type_id)",
            "CREATE INDEX ix_mv_enrollment_trends_org_year "
            "ON efir_budget.mv_enrollment_trends (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_enrollment_trends_series ON efir_budget.mv_enrollment_trends "
            "(organization_id, level_id, nationality_type_id, fiscal_year)",
        ],
    ),
    (
        "financial_ratios",
        FINANCIAL_RATIOS_SQL,
        FINANCIAL_RATIOS_COMMENT,
        FINANCIAL_RATIOS_COLUMNS,
        [
            "CREATE UNIQUE INDEX uq_mv_financial_ratios_version "
            "ON efir_budget.mv_financial_ratios (budget_version_id)",
            "CREATE INDEX ix_mv_financial_ratios_org_year "
            "ON efir_budget.mv_financial_ratios (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_financial_ratios_year_status "
            "ON efir_budget.mv_financial_ratios (fiscal_year, status)",
        ],
    ),
    (
        "workforce_utilization",
        WORKFORCE_UTILIZATION_SQL,
        WORKFORCE_UTILIZATION_COMMENT,
        WORKFORCE_UTILIZATION_COLUMNS,
        [
            "CREATE UNIQUE INDEX uq_mv_workforce_utilization_key "
            "ON efir_budget.mv_workforce_utilization (budget_version_id, subject_id)",
            "CREATE INDEX ix_mv_workforce_utilization_org_year "
            "ON efir_budget.mv_workforce_utilization (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_workforce_utilization_subject "
            "ON efir_budget.mv_workforce_utilization (subject_id)",
        ],
    ),
)


def upgrade() -> None:
    for name, view_sql, comment, columns, indexes in VIEWS:
        live, materialized = f"efir_budget.v_{name}", f"efir_budget.mv_{name}"
        op.execute(view_sql)
        op.execute(f"CREATE MATERIALIZED VIEW {materialized} AS SELECT * FROM {live} WITH DATA")
        for statement in indexes:
            op.execute(statement)
        for kind, relation, prefix in (
            ("VIEW", live, "Live defining query of mv_" + name + ". "),
            ("MATERIALIZED VIEW", materialized, ""),
        ):
            for statement in comment_statements(kind, relation, prefix + comment, columns):
                op.execute(statement)


def downgrade() -> None:
    for name, *_ in reversed(VIEWS):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS efir_budget.mv_{name}")
        op.execute(f"DROP VIEW IF EXISTS efir_budget.v_{name}")
