"""The managed views: each query defined once, materialized once, replacing the app's own.

Each managed view is a plain view ``v_*`` holding the defining query (the live answer)
and a materialized view ``mv_*`` selecting from it, with a plain unique index (so
``REFRESH ... CONCURRENTLY`` always works) and a COMMENT on it and every column. Every
child table is aggregated on its own, per version, before the join: joining one-to-many
tables first and summing after multiplies every figure (the defect of the views the
budget app had).

``mv_kpi_dashboard`` is incremental (catalog strategy ``per_version``): it selects from
``v_kpi_dashboard_incremental``, which returns exactly the rows of ``v_kpi_dashboard``
but computes live only the versions with changes its cache has not synced
(``v_kpi_dashboard_dirty``) and reads the others from ``mv_kpi_dashboard_cache``
(docs/incremental-refresh.md). It still is a real materialized view: any REFRESH,
run by hand too, equals the live query.

The budget app's database already has an ``mv_kpi_dashboard`` and an
``mv_budget_consolidation`` of its own. This revision keeps them, with their indexes,
owner, grants and comments, in ``efir_budget.replaced_app_views``, drops them and
builds the correct views under the same names; whoever could read the old view can
read the new one. The downgrade drops the new views and rebuilds the app's exactly
as they were. The new ``mv_kpi_dashboard`` keeps every column name of the app's old one
(``last_updated``, ``avg_class_size_overall``, ``total_atsem_required``,
``students_per_teaching_hour``, ``avg_students_per_class`` besides the shared names),
carrying the corrected figure (docs/adopting.md).

Revision ID: 0004_views
Revises: 0003_change_capture
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements, literal

revision: str = "0004_views"
down_revision: str | None = "0003_change_capture"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KPI_DASHBOARD_SQL = """
CREATE VIEW efir_budget.v_kpi_dashboard AS
WITH enrollment AS (
    SELECT e.budget_version_id,
           sum(e.student_count) FILTER (WHERE e.deleted_at IS NULL AND n.code = 'FRENCH') AS french_students,
           sum(e.student_count) FILTER (WHERE e.deleted_at IS NULL AND n.code = 'SAUDI')  AS saudi_students,
           sum(e.student_count) FILTER (WHERE e.deleted_at IS NULL AND n.code = 'OTHER')  AS other_students,
           sum(e.student_count) FILTER (WHERE e.deleted_at IS NULL)                       AS total_students,
           max(e.updated_at) AS updated_at
    FROM efir_budget.enrollment_plans e
    LEFT JOIN efir_budget.nationality_types n
           ON n.id = e.nationality_type_id
    GROUP BY e.budget_version_id
), classes AS (
    SELECT budget_version_id,
           sum(number_of_classes) FILTER (WHERE deleted_at IS NULL) AS total_classes,
           sum(total_students)    FILTER (WHERE deleted_at IS NULL) AS class_students,
           sum(atsem_count)       FILTER (WHERE deleted_at IS NULL) AS total_atsem,
           max(updated_at) AS updated_at
    FROM efir_budget.class_structures
    GROUP BY budget_version_id
), dhg AS (
    SELECT budget_version_id,
           sum(total_hours_per_week) FILTER (WHERE deleted_at IS NULL) AS total_dhg_hours,
           sum(simple_fte)           FILTER (WHERE deleted_at IS NULL) AS total_fte_required,
           sum(rounded_fte)          FILTER (WHERE deleted_at IS NULL) AS total_rounded_fte,
           sum(hsa_hours)            FILTER (WHERE deleted_at IS NULL) AS total_hsa_hours,
           max(updated_at) AS updated_at
    FROM efir_budget.dhg_teacher_requirements
    GROUP BY budget_version_id
), allocations AS (
    SELECT a.budget_version_id,
           sum(a.fte_count) FILTER (WHERE a.deleted_at IS NULL AND c.code = 'AEFE_DETACHED') AS aefe_detached_fte,
           sum(a.fte_count) FILTER (WHERE a.deleted_at IS NULL AND c.code = 'AEFE_FUNDED')   AS aefe_funded_fte,
           sum(a.fte_count) FILTER (WHERE a.deleted_at IS NULL AND c.code = 'LOCAL')         AS local_fte,
           sum(a.fte_count) FILTER (WHERE a.deleted_at IS NULL)                              AS total_allocated_fte,
           max(a.updated_at) AS updated_at
    FROM efir_budget.teacher_allocations a
    LEFT JOIN efir_budget.teacher_categories c
           ON c.id = a.category_id
    GROUP BY a.budget_version_id
), revenue AS (
    SELECT budget_version_id,
           sum(amount_sar) FILTER (WHERE deleted_at IS NULL AND account_code LIKE '701%') AS tuition,
           sum(amount_sar) FILTER (WHERE deleted_at IS NULL
                                     AND (account_code LIKE '702%' OR account_code LIKE '703%')) AS fees,
           sum(amount_sar) FILTER (WHERE deleted_at IS NULL
                                     AND account_code NOT LIKE '701%'
                                     AND account_code NOT LIKE '702%'
                                     AND account_code NOT LIKE '703%') AS other,
           sum(amount_sar) FILTER (WHERE deleted_at IS NULL) AS total,
           max(updated_at) AS updated_at
    FROM efir_budget.revenue_plans
    GROUP BY budget_version_id
), personnel AS (
    SELECT budget_version_id,
           sum(total_cost_sar) FILTER (WHERE deleted_at IS NULL AND account_code LIKE '6411%')     AS teaching,
           sum(total_cost_sar) FILTER (WHERE deleted_at IS NULL AND account_code NOT LIKE '6411%') AS other,
           sum(total_cost_sar) FILTER (WHERE deleted_at IS NULL) AS total,
           max(updated_at) AS updated_at
    FROM efir_budget.personnel_cost_plans
    GROUP BY budget_version_id
), operating AS (
    SELECT budget_version_id,
           sum(amount_sar) FILTER (WHERE deleted_at IS NULL) AS total,
           max(updated_at) AS updated_at
    FROM efir_budget.operating_cost_plans
    GROUP BY budget_version_id
), capex AS (
    SELECT budget_version_id,
           sum(total_cost_sar) FILTER (WHERE deleted_at IS NULL) AS total,
           max(updated_at) AS updated_at
    FROM efir_budget.capex_plans
    GROUP BY budget_version_id
), totals AS (
    SELECT v.id AS budget_version_id,
           v.organization_id,
           v.name AS version_name,
           v.fiscal_year,
           v.academic_year,
           v.status,
           v.is_baseline,
           coalesce(enr.french_students, 0)     AS french_students,
           coalesce(enr.saudi_students, 0)      AS saudi_students,
           coalesce(enr.other_students, 0)      AS other_students,
           coalesce(enr.total_students, 0)      AS total_students,
           coalesce(cls.total_classes, 0)       AS total_classes,
           coalesce(cls.class_students, 0)      AS class_students,
           coalesce(cls.total_atsem, 0)         AS total_atsem,
           coalesce(dhg.total_dhg_hours, 0)     AS total_dhg_hours,
           coalesce(dhg.total_fte_required, 0)  AS total_fte_required,
           coalesce(dhg.total_rounded_fte, 0)   AS total_rounded_fte,
           coalesce(dhg.total_hsa_hours, 0)     AS total_hsa_hours,
           coalesce(al.aefe_detached_fte, 0)    AS aefe_detached_fte,
           coalesce(al.aefe_funded_fte, 0)      AS aefe_funded_fte,
           coalesce(al.local_fte, 0)            AS local_fte,
           coalesce(al.total_allocated_fte, 0)  AS total_allocated_fte,
           coalesce(rev.tuition, 0)             AS tuition_revenue_sar,
           coalesce(rev.fees, 0)                AS fees_revenue_sar,
           coalesce(rev.other, 0)               AS other_revenue_sar,
           coalesce(rev.total, 0)               AS total_revenue_sar,
           coalesce(per.teaching, 0)            AS teaching_salaries_sar,
           coalesce(per.other, 0)               AS other_personnel_sar,
           coalesce(per.total, 0)               AS total_personnel_costs_sar,
           coalesce(op.total, 0)                AS total_operating_costs_sar,
           coalesce(cap.total, 0)               AS total_capex_sar,
           greatest(v.updated_at, enr.updated_at, cls.updated_at, dhg.updated_at, al.updated_at,
                    rev.updated_at, per.updated_at, op.updated_at, cap.updated_at) AS source_updated_at
    FROM efir_budget.budget_versions v
    LEFT JOIN enrollment  enr ON enr.budget_version_id = v.id
    LEFT JOIN classes     cls ON cls.budget_version_id = v.id
    LEFT JOIN dhg             ON dhg.budget_version_id = v.id
    LEFT JOIN allocations al  ON al.budget_version_id  = v.id
    LEFT JOIN revenue     rev ON rev.budget_version_id = v.id
    LEFT JOIN personnel   per ON per.budget_version_id = v.id
    LEFT JOIN operating   op  ON op.budget_version_id  = v.id
    LEFT JOIN capex       cap ON cap.budget_version_id = v.id
    WHERE v.deleted_at IS NULL
), money AS (
    SELECT t.*,
           t.total_revenue_sar - t.total_personnel_costs_sar
             - t.total_operating_costs_sar - t.total_capex_sar AS net_budget_sar
    FROM totals t
)
SELECT budget_version_id,
       organization_id,
       version_name,
       fiscal_year,
       academic_year,
       status,
       is_baseline,
       french_students,
       saudi_students,
       other_students,
       total_students,
       total_classes,
       round(class_students::numeric / nullif(total_classes, 0), 2)            AS avg_class_size,
       total_atsem,
       total_dhg_hours,
       total_fte_required,
       total_rounded_fte,
       total_hsa_hours,
       aefe_detached_fte,
       aefe_funded_fte,
       local_fte,
       total_allocated_fte,
       total_allocated_fte - total_fte_required                                AS fte_gap,
       round(tuition_revenue_sar, 2)                                           AS tuition_revenue_sar,
       round(fees_revenue_sar, 2)                                              AS fees_revenue_sar,
       round(other_revenue_sar, 2)                                             AS other_revenue_sar,
       round(total_revenue_sar, 2)                                             AS total_revenue_sar,
       round(teaching_salaries_sar, 2)                                         AS teaching_salaries_sar,
       round(other_personnel_sar, 2)                                           AS other_personnel_sar,
       round(total_personnel_costs_sar, 2)                                     AS total_personnel_costs_sar,
       round(total_operating_costs_sar, 2)                                     AS total_operating_costs_sar,
       round(total_capex_sar, 2)                                               AS total_capex_sar,
       round(net_budget_sar, 2)                                                AS net_budget_sar,
       round(net_budget_sar / nullif(total_revenue_sar, 0) * 100, 2)           AS budget_margin_percent,
       round(total_personnel_costs_sar / nullif(total_revenue_sar, 0) * 100, 2) AS personnel_cost_ratio_percent,
       round(total_revenue_sar / nullif(total_students, 0), 2)                 AS revenue_per_student_sar,
       round(total_personnel_costs_sar / nullif(total_students, 0), 2)         AS personnel_cost_per_student_sar,
       round(total_dhg_hours / nullif(total_students, 0), 4)                   AS hours_per_student,
       round(total_students::numeric / nullif(total_classes, 0), 2)            AS students_per_class,
       source_updated_at,
       -- The budget app's former column names, kept for its queries (the figures corrected).
       source_updated_at                                                       AS last_updated,
       round(class_students::numeric / nullif(total_classes, 0), 2)            AS avg_class_size_overall,
       total_atsem                                                             AS total_atsem_required,
       round(total_students / nullif(total_dhg_hours, 0), 4)                   AS students_per_teaching_hour,
       round(total_students::numeric / nullif(total_classes, 0), 2)            AS avg_students_per_class
FROM money
"""

BUDGET_CONSOLIDATION_SQL = """
CREATE VIEW efir_budget.v_budget_consolidation AS
SELECT c.budget_version_id,
       c.account_code,
       v.organization_id,
       v.fiscal_year,
       v.status,
       (array_agg(c.account_name           ORDER BY c.updated_at DESC, c.id DESC))[1] AS account_name,
       (array_agg(c.consolidation_category ORDER BY c.updated_at DESC, c.id DESC))[1] AS consolidation_category,
       (array_agg(c.is_revenue             ORDER BY c.updated_at DESC, c.id DESC))[1] AS is_revenue,
       round(sum(c.amount_sar), 2)  AS total_amount_sar,
       count(*)                     AS line_item_count,
       coalesce(sum(c.source_count), 0) AS source_count,
       max(c.updated_at)            AS last_updated
FROM efir_budget.budget_consolidations c
JOIN efir_budget.budget_versions v ON v.id = c.budget_version_id AND v.deleted_at IS NULL
WHERE c.deleted_at IS NULL
GROUP BY c.budget_version_id, c.account_code, v.organization_id, v.fiscal_year, v.status
"""

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
    LEFT JOIN efir_budget.academic_cycles c ON c.id = l.cycle_id
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

FINANCIAL_RATIOS_SQL = """
CREATE VIEW efir_budget.v_financial_ratios AS
WITH students AS (
    SELECT e.budget_version_id,
           sum(e.student_count) FILTER (WHERE c.code = 'MAT')  AS mat_students,
           sum(e.student_count) FILTER (WHERE c.code = 'ELEM') AS elem_students,
           sum(e.student_count) FILTER (WHERE c.code = 'COLL') AS coll_students,
           sum(e.student_count) FILTER (WHERE c.code = 'LYC')  AS lyc_students
    FROM efir_budget.enrollment_plans e
    JOIN efir_budget.academic_levels l ON l.id = e.level_id
    JOIN efir_budget.academic_cycles c ON c.id = l.cycle_id
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
    LEFT JOIN efir_budget.academic_cycles c ON c.id = p.cycle_id
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
    LEFT JOIN efir_budget.teacher_categories c ON c.id = a.category_id
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
LEFT JOIN efir_budget.subjects s ON s.id = p.subject_id
"""

KPI_COLUMNS = {
    "budget_version_id": "The budget version (one row per non-deleted version).",
    "organization_id": "The school (organizations.id) owning the version.",
    "version_name": "budget_versions.name.",
    "fiscal_year": "budget_versions.fiscal_year.",
    "academic_year": "budget_versions.academic_year, e.g. 2025-2026.",
    "status": "working, submitted, approved, forecast or superseded.",
    "is_baseline": "budget_versions.is_baseline.",
    "french_students": "Sum of enrollment_plans.student_count with nationality code FRENCH.",
    "saudi_students": "Sum of enrollment_plans.student_count with nationality code SAUDI.",
    "other_students": "Sum of enrollment_plans.student_count with nationality code OTHER.",
    "total_students": "Sum of all enrollment_plans.student_count.",
    "total_classes": "Sum of class_structures.number_of_classes.",
    "avg_class_size": "sum(class_structures.total_students) / total_classes (weighted), 2 decimals; NULL without classes.",
    "total_atsem": "Sum of class_structures.atsem_count.",
    "total_dhg_hours": "Sum of dhg_teacher_requirements.total_hours_per_week.",
    "total_fte_required": "Sum of dhg_teacher_requirements.simple_fte.",
    "total_rounded_fte": "Sum of dhg_teacher_requirements.rounded_fte.",
    "total_hsa_hours": "Sum of dhg_teacher_requirements.hsa_hours (overtime hours).",
    "aefe_detached_fte": "Sum of teacher_allocations.fte_count, category AEFE_DETACHED.",
    "aefe_funded_fte": "Sum of teacher_allocations.fte_count, category AEFE_FUNDED.",
    "local_fte": "Sum of teacher_allocations.fte_count, category LOCAL.",
    "total_allocated_fte": "Sum of all teacher_allocations.fte_count.",
    "fte_gap": "total_allocated_fte - total_fte_required (negative = teachers missing).",
    "tuition_revenue_sar": "Revenue on accounts 701* (tuition), SAR.",
    "fees_revenue_sar": "Revenue on accounts 702* and 703* (registration, DAI, enrolment fees), SAR.",
    "other_revenue_sar": "All other revenue_plans, SAR.",
    "total_revenue_sar": "All revenue_plans, SAR.",
    "teaching_salaries_sar": "personnel_cost_plans.total_cost_sar on accounts 6411*, SAR.",
    "other_personnel_sar": "All other personnel_cost_plans, SAR.",
    "total_personnel_costs_sar": "All personnel_cost_plans.total_cost_sar, SAR.",
    "total_operating_costs_sar": "Sum of operating_cost_plans.amount_sar, SAR.",
    "total_capex_sar": "Sum of capex_plans.total_cost_sar, SAR.",
    "net_budget_sar": "total_revenue_sar - personnel - operating - capex, SAR.",
    "budget_margin_percent": "net_budget_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "personnel_cost_ratio_percent": "total_personnel_costs_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "revenue_per_student_sar": "total_revenue_sar / total_students, 2 decimals; NULL without students.",
    "personnel_cost_per_student_sar": "total_personnel_costs_sar / total_students, 2 decimals; NULL without students.",
    "hours_per_student": "H/E ratio: total_dhg_hours / total_students, 4 decimals; NULL without students.",
    "students_per_class": "E/D ratio: total_students / total_classes, 2 decimals; NULL without classes.",
    "source_updated_at": "Latest updated_at of the version row and all its child rows (deleted ones included: a deletion is a change).",
    "last_updated": "Kept for the budget app's former queries: the same as source_updated_at (the latest change of the version or any of its rows; before, only budget_versions.updated_at).",
    "avg_class_size_overall": "Kept for the budget app's former queries: the same as avg_class_size (weighted by classes; before, a plain mean of per-level averages multiplied by the join).",
    "total_atsem_required": "Kept for the budget app's former queries: the same as total_atsem.",
    "students_per_teaching_hour": "Kept for the budget app's former queries: total_students / total_dhg_hours (students per weekly DHG hour, the inverse of hours_per_student), 4 decimals; NULL without DHG hours.",
    "avg_students_per_class": "Kept for the budget app's former queries: the same as students_per_class.",
}

CONSOLIDATION_COLUMNS = {
    "budget_version_id": "The budget version (key, with account_code).",
    "account_code": "PCG account code (key, with budget_version_id).",
    "organization_id": "The school owning the version.",
    "fiscal_year": "budget_versions.fiscal_year.",
    "status": "budget_versions.status.",
    "account_name": "Account name of the latest updated row of this key.",
    "consolidation_category": "Consolidation category of the latest updated row of this key.",
    "is_revenue": "Whether the account is revenue (latest updated row of this key).",
    "total_amount_sar": "Sum of budget_consolidations.amount_sar, SAR.",
    "line_item_count": "Number of rows summed.",
    "source_count": "Sum of budget_consolidations.source_count.",
    "last_updated": "Latest updated_at of the rows summed.",
}

ENROLLMENT_TRENDS_COLUMNS = {
    "budget_version_id": "The approved version of (organization_id, fiscal_year): non-deleted, status approved, latest approved_at (NULL last), then updated_at, then id. Key, with level_id and nationality_type_id.",
    "level_id": "The level (academic_levels row). Key part.",
    "nationality_type_id": "The nationality type (nationality_types row). Key part.",
    "organization_id": "The school owning the version.",
    "fiscal_year": "budget_versions.fiscal_year of the approved version.",
    "academic_year": "budget_versions.academic_year of the approved version.",
    "version_name": "budget_versions.name of the approved version.",
    "approved_at": "budget_versions.approved_at of the approved version.",
    "cycle_code": "academic_cycles.code of the level's cycle.",
    "level_code": "academic_levels.code, PS to TLE.",
    "level_sort_order": "academic_levels.sort_order (order levels by it).",
    "nationality_code": "nationality_types.code: FRENCH, SAUDI or OTHER.",
    "student_count": "Sum of enrollment_plans.student_count of this version, level and nationality; 0 when none.",
    "previous_budget_version_id": "The approved version of (organization_id, fiscal_year - 1); NULL when that year has none.",
    "previous_student_count": "student_count of the same level and nationality in previous_budget_version_id (0 without a row); NULL without a previous approved version.",
    "yoy_change": "student_count - previous_student_count; NULL without a previous approved version.",
    "yoy_change_percent": "yoy_change / previous_student_count * 100, 2 decimals; NULL when previous_student_count is NULL or 0.",
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
    "tuition_share_percent": "tuition_revenue_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "fees_share_percent": "fees_revenue_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "other_revenue_share_percent": "other_revenue_sar / total_revenue_sar * 100, 2 decimals; NULL without revenue.",
    "total_personnel_costs_sar": "mv_kpi_dashboard.total_personnel_costs_sar.",
    "total_operating_costs_sar": "mv_kpi_dashboard.total_operating_costs_sar.",
    "total_capex_sar": "mv_kpi_dashboard.total_capex_sar.",
    "total_expenses_sar": "total_personnel_costs_sar + total_operating_costs_sar + total_capex_sar.",
    "personnel_share_percent": "total_personnel_costs_sar / total_expenses_sar * 100, 2 decimals; NULL without expenses.",
    "operating_share_percent": "total_operating_costs_sar / total_expenses_sar * 100, 2 decimals; NULL without expenses.",
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
    "unallocated_personnel_cost_sar": "personnel_cost_plans.total_cost_sar without a cycle: not spread over the cycles, SAR.",
    "mat_personnel_cost_per_student_sar": "mat_personnel_cost_sar / mat_students, 2 decimals; NULL without students.",
    "elem_personnel_cost_per_student_sar": "elem_personnel_cost_sar / elem_students, 2 decimals; NULL without students.",
    "coll_personnel_cost_per_student_sar": "coll_personnel_cost_sar / coll_students, 2 decimals; NULL without students.",
    "lyc_personnel_cost_per_student_sar": "lyc_personnel_cost_sar / lyc_students, 2 decimals; NULL without students.",
    "total_cost_per_student_sar": "total_expenses_sar / total_students, 2 decimals; NULL without students.",
}

WORKFORCE_UTILIZATION_COLUMNS = {
    "budget_version_id": "The budget version (non-deleted). Key, with subject_id.",
    "subject_id": "The subject. Key, with budget_version_id.",
    "organization_id": "The school owning the version.",
    "version_name": "budget_versions.name.",
    "fiscal_year": "budget_versions.fiscal_year.",
    "status": "budget_versions.status.",
    "subject_code": "subjects.code.",
    "subject_name": "subjects.name_en.",
    "subject_category": "subjects.category.",
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
    "utilization_percent": "simple_fte / total_allocated_fte * 100, 2 decimals (> 100 = under-staffed); NULL without allocated FTE.",
}


@dataclass(frozen=True)
class View:
    """One managed view as this revision builds it (frozen here, not read from the catalog)."""

    name: str
    query: str
    comment: str
    columns: dict[str, str]
    indexes: tuple[str, ...]
    incremental: bool = False
    key: tuple[str, ...] = field(default=("budget_version_id",))

    @property
    def mv(self) -> str:
        return f"efir_budget.mv_{self.name}"

    @property
    def live(self) -> str:
        return f"efir_budget.v_{self.name}"


# Dependencies first: v_financial_ratios reads mv_kpi_dashboard.
VIEWS: tuple[View, ...] = (
    View(
        "kpi_dashboard",
        KPI_DASHBOARD_SQL,
        "KPI dashboard: one row per non-deleted budget version; sums over non-deleted rows, "
        "0 when a version has none; ratios NULL when the denominator is 0.",
        KPI_COLUMNS,
        (
            "CREATE UNIQUE INDEX uq_mv_kpi_dashboard_version ON {mv} (budget_version_id)",
            "CREATE INDEX ix_mv_kpi_dashboard_year_status ON {mv} (fiscal_year, status)",
            "CREATE INDEX ix_mv_kpi_dashboard_org_year ON {mv} (organization_id, fiscal_year)",
        ),
        incremental=True,
    ),
    View(
        "budget_consolidation",
        BUDGET_CONSOLIDATION_SQL,
        "Budget consolidation: one row per (budget version, account) over non-deleted "
        "budget_consolidations rows of non-deleted versions.",
        CONSOLIDATION_COLUMNS,
        (
            "CREATE UNIQUE INDEX uq_mv_budget_consolidation_key "
            "ON {mv} (budget_version_id, account_code)",
            "CREATE INDEX ix_mv_budget_consolidation_category ON {mv} (consolidation_category)",
            "CREATE INDEX ix_mv_budget_consolidation_year_status ON {mv} (fiscal_year, status)",
        ),
        key=("budget_version_id", "account_code"),
    ),
    View(
        "enrollment_trends",
        ENROLLMENT_TRENDS_SQL,
        "Enrollment trends: one row per (approved version of an organization and fiscal "
        "year, level, nationality); students and the change vs fiscal_year - 1's approved "
        "version.",
        ENROLLMENT_TRENDS_COLUMNS,
        (
            "CREATE UNIQUE INDEX uq_mv_enrollment_trends_key "
            "ON {mv} (budget_version_id, level_id, nationality_type_id)",
            "CREATE INDEX ix_mv_enrollment_trends_org_year ON {mv} (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_enrollment_trends_series "
            "ON {mv} (organization_id, level_id, nationality_type_id, fiscal_year)",
        ),
        key=("budget_version_id", "level_id", "nationality_type_id"),
    ),
    View(
        "financial_ratios",
        FINANCIAL_RATIOS_SQL,
        "Financial ratios: one row per non-deleted budget version (reads mv_kpi_dashboard); "
        "revenue mix, cost shares, margin, personnel cost per student by cycle.",
        FINANCIAL_RATIOS_COLUMNS,
        (
            "CREATE UNIQUE INDEX uq_mv_financial_ratios_version ON {mv} (budget_version_id)",
            "CREATE INDEX ix_mv_financial_ratios_org_year ON {mv} (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_financial_ratios_year_status ON {mv} (fiscal_year, status)",
        ),
    ),
    View(
        "workforce_utilization",
        WORKFORCE_UTILIZATION_SQL,
        "Workforce utilization: one row per (non-deleted budget version, subject); DHG hours "
        "required vs teacher FTE allocated by category, HSA share, gap.",
        WORKFORCE_UTILIZATION_COLUMNS,
        (
            "CREATE UNIQUE INDEX uq_mv_workforce_utilization_key "
            "ON {mv} (budget_version_id, subject_id)",
            "CREATE INDEX ix_mv_workforce_utilization_org_year "
            "ON {mv} (organization_id, fiscal_year)",
            "CREATE INDEX ix_mv_workforce_utilization_subject ON {mv} (subject_id)",
        ),
        key=("budget_version_id", "subject_id"),
    ),
)

# --------------------------------------------------------------------------- incremental

# The versions with a change the view's cache has not synced (NULL for a change without
# a version: a reference table or a TRUNCATE); a single NULL when never synced. A
# function, not a CTE of the dirty view, for its ROWS estimate: the planner has no idea
# how many log rows follow a snapshot's xmin, and every guessed version costs a
# per-version query in the plan.
UNSYNCED_VERSIONS = """
CREATE FUNCTION efir_budget.unsynced_versions(view_name text, live_view text)
RETURNS TABLE (budget_version_id uuid)
LANGUAGE sql STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH state AS MATERIALIZED (
        SELECT s.snap, s.origin
        FROM (SELECT 1) one
        LEFT JOIN (SELECT i.synced_snapshot AS snap, i.synced_origin AS origin
                   FROM efir_budget.incremental_state i WHERE i.view_name = $1) s ON true
    )
    SELECT NULL::uuid FROM state WHERE state.snap IS NULL
    UNION
    SELECT c.budget_version_id
    FROM state
    JOIN efir_budget.change_log c
      ON state.snap IS NOT NULL
     AND c.txid >= efir_budget.txid_floor(state.snap, state.origin)
     AND NOT efir_budget.is_reflected(c.txid, c.origin, state.snap, state.origin)
    WHERE c.table_name IN (SELECT efir_budget.view_source_tables($2))
$fn$
"""

# Besides the unsynced changes, the cache is checked against the versions themselves
# (one full join, ~3 ms at 12,000 versions): a cached version no longer live, or a live
# version missing from the cache, is recomputed whatever the log says, so a cache
# emptied or edited by hand cannot hide or resurrect a row.
KPI_DIRTY = """
CREATE VIEW efir_budget.v_kpi_dashboard_dirty AS
SELECT u.budget_version_id
FROM efir_budget.unsynced_versions('mv_kpi_dashboard', 'v_kpi_dashboard') u
UNION
SELECT coalesce(live.id, k.budget_version_id)
FROM (SELECT b.id FROM efir_budget.budget_versions b WHERE b.deleted_at IS NULL) live
FULL JOIN efir_budget.mv_kpi_dashboard_cache k ON k.budget_version_id = live.id
WHERE live.id IS NULL OR k.budget_version_id IS NULL
"""

# The live rows: cache for clean versions, v_* per dirty version, or v_* whole. The
# per-version subquery stays apart from the join (LIMIT 2), so its version equality is a
# restriction PostgreSQL pushes into each per-table aggregate of v_*; LIMIT also gives
# the planner a sane estimate (it multiplies the aggregates' input rows otherwise, and
# JIT-compiled for seconds what runs in milliseconds). Two, not one: were the live query
# ever to return two rows for a version, the REFRESH would fail on the unique index as
# the full query would, instead of hiding one. UNION ALL branches are gated by one-time
# filters: the ones not needed are not executed.
KPI_INCREMENTAL = """
CREATE VIEW efir_budget.v_kpi_dashboard_incremental AS
WITH dirty AS MATERIALIZED (
    SELECT d.budget_version_id FROM efir_budget.v_kpi_dashboard_dirty d
), scope AS MATERIALIZED (
    SELECT EXISTS (SELECT FROM dirty WHERE dirty.budget_version_id IS NULL) AS everything
)
SELECT live.* FROM efir_budget.v_kpi_dashboard live
WHERE (SELECT scope.everything FROM scope)
UNION ALL
SELECT cache.* FROM efir_budget.mv_kpi_dashboard_cache cache
WHERE NOT (SELECT scope.everything FROM scope)
  AND NOT EXISTS (SELECT FROM dirty WHERE dirty.budget_version_id = cache.budget_version_id)
UNION ALL
SELECT live.* FROM dirty
CROSS JOIN LATERAL (
    SELECT l.* FROM efir_budget.v_kpi_dashboard l
    WHERE l.budget_version_id = dirty.budget_version_id LIMIT 2
) live
WHERE NOT (SELECT scope.everything FROM scope)
"""


def incremental_objects(view: View) -> list[str]:
    """The cache, the dirty and incremental views of the KPI view, commented."""
    cache = "efir_budget.mv_kpi_dashboard_cache"
    statements = [
        # Same columns and types as the live query, no rows: the first refresh fills it.
        f"CREATE TABLE {cache} WITH (fillfactor = 90) AS SELECT * FROM {view.live} WITH NO DATA",
        f"ALTER TABLE {cache} ADD CONSTRAINT pk_mv_kpi_dashboard_cache PRIMARY KEY (budget_version_id)",
        f"REVOKE ALL ON {cache} FROM PUBLIC",
        "INSERT INTO efir_budget.incremental_state (view_name) VALUES ('mv_kpi_dashboard')",
        UNSYNCED_VERSIONS,
        "REVOKE ALL ON FUNCTION efir_budget.unsynced_versions(text, text) FROM PUBLIC",
        "COMMENT ON FUNCTION efir_budget.unsynced_versions(text, text) IS "
        + literal(
            "Versions with a change to a table live_view reads that view_name's cache has not "
            "synced; NULL for such a change without a version (reference table, TRUNCATE), "
            "and a lone NULL when the view was never synced: every version."
        ),
        KPI_DIRTY,
        KPI_INCREMENTAL,
    ]
    statements += comment_statements(
        "TABLE",
        cache,
        "mv_kpi_dashboard rows as the refresh engine last synced them (after its REFRESH, in "
        "the same transaction); v_kpi_dashboard_incremental reads the clean versions from "
        "here. Pipeline-owned: never write it by hand (a full refresh rewrites it).",
        view.columns,
    )
    statements += comment_statements(
        "VIEW",
        "efir_budget.v_kpi_dashboard_dirty",
        "The versions the next incremental refresh of mv_kpi_dashboard recomputes from "
        "v_kpi_dashboard: unsynced changes, versions missing from or no longer live in the "
        "cache. A NULL row: every version (never synced, full refresh asked for, or an "
        "unsynced change without a version: reference table, TRUNCATE).",
        {"budget_version_id": "A version to recompute; NULL: all of them."},
    )
    statements += comment_statements(
        "VIEW",
        "efir_budget.v_kpi_dashboard_incremental",
        "Defining query of mv_kpi_dashboard (strategy per_version): exactly the rows of "
        "v_kpi_dashboard, read from mv_kpi_dashboard_cache for the versions without unsynced "
        "changes and computed live for the others (v_kpi_dashboard_dirty).",
        view.columns,
    )
    return statements


# --------------------------------------------------------------------------- the app's views

REPLACED = """
CREATE TABLE efir_budget.replaced_app_views (
    view_name       text PRIMARY KEY,
    definition      text NOT NULL,
    populated       boolean NOT NULL,
    owner           name NOT NULL,
    acl             aclitem[],
    reloptions      text[],
    comment         text,
    column_comments jsonb NOT NULL,
    indexes         text[] NOT NULL,
    index_comments  jsonb NOT NULL,
    replaced_at     timestamptz NOT NULL DEFAULT now(),
    replaced_by     text NOT NULL DEFAULT session_user
)
"""

REPLACED_COLUMNS = {
    "view_name": "The app's materialized view this pipeline replaced under the same name.",
    "definition": "Its query (pg_get_viewdef), to rebuild it on downgrade.",
    "populated": "Whether it held rows (WITH DATA) when replaced.",
    "owner": "Its owner.",
    "acl": "Its privileges (grants), restored on downgrade.",
    "reloptions": "Its storage options.",
    "comment": "Its COMMENT.",
    "column_comments": "Its column COMMENTs, by column name.",
    "indexes": "Its index definitions (pg_get_indexdef).",
    "index_comments": "Its index COMMENTs, by index name.",
    "replaced_at": "When the pipeline replaced it.",
    "replaced_by": "The role that ran the migration.",
}

# Keep, then drop, a view of the app's that one of ours replaces (RESTRICT: should some
# other object of the app read it, the migration stops and says which).
STASH = """
DO $do$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT c.oid, c.relname FROM pg_class c
             WHERE c.relnamespace = 'efir_budget'::regnamespace AND c.relkind = 'm'
               AND c.relname = ANY(ARRAY['mv_kpi_dashboard', 'mv_budget_consolidation'])
    LOOP
        INSERT INTO efir_budget.replaced_app_views
            (view_name, definition, populated, owner, acl, reloptions, comment,
             column_comments, indexes, index_comments)
        SELECT c.relname, regexp_replace(pg_get_viewdef(c.oid), ';\\s*$', ''), c.relispopulated,
               pg_get_userbyid(c.relowner), c.relacl, c.reloptions,
               obj_description(c.oid, 'pg_class'),
               (SELECT coalesce(jsonb_object_agg(a.attname, col_description(c.oid, a.attnum)), '{}')
                FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                  AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL),
               ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                     WHERE i.indrelid = c.oid ORDER BY i.indexrelid),
               (SELECT coalesce(jsonb_object_agg(ic.relname, obj_description(ic.oid, 'pg_class')), '{}')
                FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                WHERE i.indrelid = c.oid AND obj_description(ic.oid, 'pg_class') IS NOT NULL)
        FROM pg_class c WHERE c.oid = v.oid;
        EXECUTE format('DROP MATERIALIZED VIEW efir_budget.%I', v.relname);
        RAISE NOTICE 'replaced the budget app''s efir_budget.% (kept in replaced_app_views)',
            v.relname;
    END LOOP;
END
$do$
"""

# Whoever could read the app's view can read ours: its owner, and every SELECT grantee.
CARRY_GRANTS = """
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT v.view_name, v.owner AS grantee FROM efir_budget.replaced_app_views v
             UNION
             SELECT v.view_name,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
             FROM efir_budget.replaced_app_views v CROSS JOIN LATERAL aclexplode(v.acl) a
             WHERE a.privilege_type = 'SELECT'
    LOOP
        EXECUTE format('GRANT SELECT ON efir_budget.%I TO %s', r.view_name,
                       CASE WHEN r.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(r.grantee) END);
    END LOOP;
END
$do$
"""

RESTORE = """
DO $do$
DECLARE
    v record;
    x record;
    idx text;
BEGIN
    FOR v IN SELECT * FROM efir_budget.replaced_app_views ORDER BY view_name LOOP
        EXECUTE format('CREATE MATERIALIZED VIEW efir_budget.%I%s AS %s WITH %s', v.view_name,
                       CASE WHEN v.reloptions IS NOT NULL
                            THEN format(' WITH (%s)', array_to_string(v.reloptions, ', ')) ELSE '' END,
                       v.definition, CASE WHEN v.populated THEN 'DATA' ELSE 'NO DATA' END);
        FOREACH idx IN ARRAY v.indexes LOOP
            EXECUTE idx;
        END LOOP;
        FOR x IN SELECT key, value FROM jsonb_each_text(v.index_comments) LOOP
            EXECUTE format('COMMENT ON INDEX efir_budget.%I IS %L', x.key, x.value);
        END LOOP;
        IF v.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON MATERIALIZED VIEW efir_budget.%I IS %L', v.view_name, v.comment);
        END IF;
        FOR x IN SELECT key, value FROM jsonb_each_text(v.column_comments) LOOP
            EXECUTE format('COMMENT ON COLUMN efir_budget.%I.%I IS %L', v.view_name, x.key, x.value);
        END LOOP;
        EXECUTE format('ALTER MATERIALIZED VIEW efir_budget.%I OWNER TO %I', v.view_name, v.owner);
        EXECUTE format('REVOKE ALL ON efir_budget.%I FROM PUBLIC', v.view_name);
        FOR x IN SELECT * FROM aclexplode(v.acl) a WHERE a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = v.owner) LOOP
            EXECUTE format('GRANT %s ON efir_budget.%I TO %s%s', x.privilege_type, v.view_name,
                           CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
                           CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$do$
"""


def create(view: View) -> list[str]:
    statements = [view.query]
    source = view.live
    if view.incremental:
        statements += incremental_objects(view)
        source = f"efir_budget.v_{view.name}_incremental"
    # ORDER BY the key: REFRESH ... CONCURRENTLY's duplicate check then finds the rows presorted.
    statements.append(
        f"CREATE MATERIALIZED VIEW {view.mv} AS SELECT * FROM {source} "
        f"ORDER BY {', '.join(view.key)} WITH DATA"
    )
    statements += [index.format(mv=view.mv) for index in view.indexes]
    statements.append(
        f"INSERT INTO efir_budget.refresh_state (view_name) VALUES ({literal(f'mv_{view.name}')})"
    )
    statements += comment_statements(
        "VIEW", view.live, f"Live defining query of mv_{view.name}. {view.comment}", view.columns
    )
    statements += comment_statements("MATERIALIZED VIEW", view.mv, view.comment, view.columns)
    return statements


def upgrade() -> None:
    op.execute(REPLACED)
    op.execute("REVOKE ALL ON efir_budget.replaced_app_views FROM PUBLIC")
    for statement in comment_statements(
        "TABLE",
        "efir_budget.replaced_app_views",
        "The budget app's own materialized views this pipeline replaced under the same names, "
        "as they were: efir-pipeline db downgrade base rebuilds them from here.",
        REPLACED_COLUMNS,
    ):
        op.execute(statement)
    op.execute(STASH)
    for view in VIEWS:
        for statement in create(view):
            op.execute(statement)
    op.execute(CARRY_GRANTS)


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP MATERIALIZED VIEW {view.mv}")
        op.execute(f"DELETE FROM efir_budget.refresh_state WHERE view_name = 'mv_{view.name}'")
        if view.incremental:
            op.execute(f"DROP VIEW efir_budget.v_{view.name}_incremental")
            op.execute(f"DROP VIEW efir_budget.v_{view.name}_dirty")
            op.execute("DROP FUNCTION efir_budget.unsynced_versions(text, text)")
            op.execute(f"DROP TABLE efir_budget.mv_{view.name}_cache")
            op.execute(
                f"DELETE FROM efir_budget.incremental_state WHERE view_name = 'mv_{view.name}'"
            )
        op.execute(f"DROP VIEW {view.live}")
    op.execute(RESTORE)
    op.execute("DROP TABLE efir_budget.replaced_app_views")
