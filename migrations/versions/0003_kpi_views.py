"""The KPI views: each query defined once, materialized once.

Each managed view is two objects:

- ``v_*``, a plain view holding the defining query (the live answer), and
- ``mv_*``, a materialized view that is ``SELECT * FROM v_*`` with a unique index,

so the live query, the materialized rows and the reconciliation check can never
drift apart. Every child table is aggregated on its own, per version, before the
join: joining one-to-many tables first and summing after multiplies every figure
(the defect of the design this replaces).

Production databases that already hold the source tables run
``alembic stamp 0001_source_schema`` and then ``alembic upgrade head``.

Revision ID: 0003_kpi_views
Revises: 0002_refresh_history
"""

from collections.abc import Sequence

from alembic import op

from efir_pipeline.core.db.ddl import comment_statements

revision: str = "0003_kpi_views"
down_revision: str | None = "0002_refresh_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per-table aggregates keep every row (deleted ones too) for max(updated_at), because a
# deletion is a change for source_updated_at; the sums count live rows only.
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
           ON n.id = e.nationality_type_id AND n.deleted_at IS NULL
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
           ON c.id = a.category_id AND c.deleted_at IS NULL
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
       source_updated_at
FROM money
"""

# Several live rows can share a key only if the app bypasses the partial unique index;
# the descriptive columns then come from the latest updated row (id breaks exact ties).
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
    "avg_class_size": "sum(class_structures.total_students) / total_classes (weighted), "
    "2 decimals; NULL without classes.",
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
    "personnel_cost_ratio_percent": "total_personnel_costs_sar / total_revenue_sar * 100, "
    "2 decimals; NULL without revenue.",
    "revenue_per_student_sar": "total_revenue_sar / total_students, 2 decimals; NULL without students.",
    "personnel_cost_per_student_sar": "total_personnel_costs_sar / total_students, 2 decimals; "
    "NULL without students.",
    "hours_per_student": "H/E ratio: total_dhg_hours / total_students, 4 decimals; NULL without students.",
    "students_per_class": "E/D ratio: total_students / total_classes, 2 decimals; NULL without classes.",
    "source_updated_at": "Latest updated_at of the version row and all its child rows "
    "(deleted ones included: a deletion is a change).",
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

VIEWS = (
    (
        "kpi_dashboard",
        KPI_DASHBOARD_SQL,
        "KPI dashboard: one row per non-deleted budget version; sums over non-deleted rows, "
        "0 when a version has none; ratios NULL when the denominator is 0.",
        KPI_COLUMNS,
        [
            "CREATE UNIQUE INDEX uq_mv_kpi_dashboard_version "
            "ON efir_budget.mv_kpi_dashboard (budget_version_id)",
            "CREATE INDEX ix_mv_kpi_dashboard_year_status ON efir_budget.mv_kpi_dashboard (fiscal_year, status)",
            "CREATE INDEX ix_mv_kpi_dashboard_org_year "
            "ON efir_budget.mv_kpi_dashboard (organization_id, fiscal_year)",
        ],
    ),
    (
        "budget_consolidation",
        BUDGET_CONSOLIDATION_SQL,
        "Budget consolidation: one row per (budget version, account) over non-deleted "
        "budget_consolidations rows of non-deleted versions.",
        CONSOLIDATION_COLUMNS,
        [
            "CREATE UNIQUE INDEX uq_mv_budget_consolidation_key "
            "ON efir_budget.mv_budget_consolidation (budget_version_id, account_code)",
            "CREATE INDEX ix_mv_budget_consolidation_category "
            "ON efir_budget.mv_budget_consolidation (consolidation_category)",
            "CREATE INDEX ix_mv_budget_consolidation_year_status "
            "ON efir_budget.mv_budget_consolidation (fiscal_year, status)",
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
