"""The Budget-App's own database, rebuilt in a scratch database for adoption tests.

The pipeline has to be installed on the database the EFIR Budget-App already runs on.
That database was made by the app's SQLAlchemy models and the app's own alembic
history, not by this project's migrations; this module rebuilds it by hand, from the
app's side, so a test can hold the project's first migration up against it.

What it reproduces, on purpose:

- schema ``efir_budget`` owned by the app's role;
- the app's enum types ``budgetversionstatus`` and ``consolidationcategory`` (no
  underscore: the app's ORM casts to these names);
- the sixteen tables the KPI views read, column for column (order, types, nullability,
  CHECK / UNIQUE / FOREIGN KEY constraints under PostgreSQL's default names). The app's
  ORM fills ``id``, ``created_at`` and ``updated_at``, so none of them has a server
  default; the reference tables and ``organizations`` have no ``deleted_at``, and
  ``organizations`` has neither ``code`` nor timestamps; every plan table carries audit
  columns (``created_by_id``, ``updated_by_id``, ``notes``) the views never read;
- the thirty-nine other tables of the app (minimal, but some of them depend on
  ``budget_versions`` through cascading foreign keys, like in the app), with a few rows
  in ``users``, ``employees`` and ``employee_salaries``;
- the app's alembic bookkeeping (``efir_budget.alembic_version``, one revision);
- the reference rows the app seeds and its single organization;
- the app's two old materialized views with the defect they shipped with: every child
  table is LEFT JOINed to the version first and summed afterwards, so each figure is
  multiplied by the row counts of the other joined tables; plus their indexes (a unique
  one on the dashboard, none unique on the consolidation), a comment, and ``SELECT``
  granted to a reader role.

Plain functions over a psycopg 3 connection in autocommit mode, opened as a superuser;
no Dagster, no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

SCHEMA = "efir_budget"
APP_ALEMBIC_REVISION = "bfc62faea07a"
ORGANIZATION_NAME = "EFIR Riyadh"
KPI_VIEW = "mv_kpi_dashboard"
CONSOLIDATION_VIEW = "mv_budget_consolidation"
KPI_VIEW_COMMENT = "KPI dashboard (app phase 2.2)"

BUDGET_VERSION_STATUSES = ("working", "submitted", "approved", "forecast", "superseded")
CONSOLIDATION_CATEGORIES = (
    "revenue_tuition",
    "revenue_fees",
    "revenue_other",
    "personnel_teaching",
    "personnel_admin",
    "personnel_support",
    "personnel_social",
    "operating_supplies",
    "operating_utilities",
    "operating_maintenance",
    "operating_insurance",
    "operating_other",
    "capex_equipment",
    "capex_it",
    "capex_furniture",
    "capex_building",
    "capex_software",
)

# --------------------------------------------------------------------------------------
# The sixteen tables the views read
# --------------------------------------------------------------------------------------

APP_TABLES: tuple[str, ...] = (
    "organizations",
    "budget_versions",
    "academic_cycles",
    "academic_levels",
    "nationality_types",
    "teacher_categories",
    "subjects",
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

_UUID = "uuid"
_TS = "timestamp with time zone"
_INT = "integer"
_BOOL = "boolean"
_TEXT = "text"


def _vc(n: int) -> str:
    return f"character varying({n})"


def _num(p: int, s: int) -> str:
    return f"numeric({p},{s})"


# The columns the app's ORM adds to every row: id and both timestamps, no server default.
_ROW = [("id", _UUID, True), ("created_at", _TS, True), ("updated_at", _TS, True)]
# ... and to every user-edited row: who created / last changed it, and the soft delete.
_AUDIT = [
    ("created_by_id", _UUID, False),
    ("updated_by_id", _UUID, False),
    ("deleted_at", _TS, False),
]
_VERSIONED = [("budget_version_id", _UUID, True)]

SOURCE_COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "organizations": [
        ("id", _UUID, True),
        ("name", _vc(255), True),
        ("is_active", _BOOL, True),
    ],
    "budget_versions": [
        ("name", _vc(100), True),
        ("fiscal_year", _INT, True),
        ("academic_year", _vc(20), True),
        ("status", f"{SCHEMA}.budgetversionstatus", True),
        ("submitted_at", _TS, False),
        ("submitted_by_id", _UUID, False),
        ("approved_at", _TS, False),
        ("approved_by_id", _UUID, False),
        ("notes", _TEXT, False),
        ("is_baseline", _BOOL, True),
        ("organization_id", _UUID, True),
        ("parent_version_id", _UUID, False),
        *_ROW,
        *_AUDIT,
    ],
    "academic_cycles": [
        ("code", _vc(20), True),
        ("name_fr", _vc(100), True),
        ("name_en", _vc(100), True),
        ("sort_order", _INT, True),
        ("requires_atsem", _BOOL, True),
        *_ROW,
    ],
    "academic_levels": [
        ("cycle_id", _UUID, True),
        ("code", _vc(20), True),
        ("name_fr", _vc(100), True),
        ("name_en", _vc(100), True),
        ("sort_order", _INT, True),
        ("is_secondary", _BOOL, True),
        *_ROW,
    ],
    "nationality_types": [
        ("code", _vc(20), True),
        ("name_fr", _vc(100), True),
        ("name_en", _vc(100), True),
        ("vat_applicable", _BOOL, True),
        ("sort_order", _INT, True),
        *_ROW,
    ],
    "teacher_categories": [
        ("code", _vc(20), True),
        ("name_fr", _vc(100), True),
        ("name_en", _vc(100), True),
        ("description", _TEXT, False),
        ("is_aefe", _BOOL, True),
        *_ROW,
    ],
    "subjects": [
        ("code", _vc(20), True),
        ("name_fr", _vc(100), True),
        ("name_en", _vc(100), True),
        ("category", _vc(50), True),
        ("is_active", _BOOL, True),
        *_ROW,
    ],
    "enrollment_plans": [
        ("level_id", _UUID, True),
        ("nationality_type_id", _UUID, True),
        ("student_count", _INT, True),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "class_structures": [
        ("level_id", _UUID, True),
        ("total_students", _INT, True),
        ("number_of_classes", _INT, True),
        ("avg_class_size", _num(5, 2), True),
        ("requires_atsem", _BOOL, True),
        ("atsem_count", _INT, True),
        ("calculation_method", _vc(50), True),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "dhg_teacher_requirements": [
        ("subject_id", _UUID, True),
        ("total_hours_per_week", _num(6, 2), True),
        ("standard_teaching_hours", _num(4, 2), True),
        ("simple_fte", _num(5, 2), True),
        ("rounded_fte", _INT, True),
        ("hsa_hours", _num(5, 2), True),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "teacher_allocations": [
        ("subject_id", _UUID, True),
        ("cycle_id", _UUID, True),
        ("category_id", _UUID, True),
        ("fte_count", _num(5, 2), True),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "revenue_plans": [
        ("account_code", _vc(20), True),
        ("description", _TEXT, True),
        ("category", _vc(50), True),
        ("amount_sar", _num(12, 2), True),
        ("is_calculated", _BOOL, True),
        ("calculation_driver", _vc(100), False),
        ("trimester", _INT, False),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "personnel_cost_plans": [
        ("account_code", _vc(20), True),
        ("description", _TEXT, True),
        ("category_id", _UUID, False),
        ("cycle_id", _UUID, False),
        ("fte_count", _num(5, 2), True),
        ("unit_cost_sar", _num(10, 2), True),
        ("total_cost_sar", _num(12, 2), True),
        ("is_calculated", _BOOL, True),
        ("calculation_driver", _vc(100), False),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "operating_cost_plans": [
        ("account_code", _vc(20), True),
        ("description", _TEXT, True),
        ("category", _vc(50), True),
        ("amount_sar", _num(12, 2), True),
        ("is_calculated", _BOOL, True),
        ("calculation_driver", _vc(100), False),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "capex_plans": [
        ("account_code", _vc(20), True),
        ("description", _TEXT, True),
        ("category", _vc(50), True),
        ("quantity", _INT, True),
        ("unit_cost_sar", _num(10, 2), True),
        ("total_cost_sar", _num(12, 2), True),
        ("acquisition_date", "date", True),
        ("useful_life_years", _INT, True),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
    "budget_consolidations": [
        ("account_code", _vc(10), True),
        ("account_name", _vc(200), True),
        ("consolidation_category", f"{SCHEMA}.consolidationcategory", True),
        ("is_revenue", _BOOL, True),
        ("amount_sar", _num(15, 2), True),
        ("source_table", _vc(50), True),
        ("source_count", _INT, True),
        ("is_calculated", _BOOL, True),
        ("notes", _TEXT, False),
        *_ROW,
        *_AUDIT,
        *_VERSIONED,
    ],
}
"""For each of the sixteen tables: (column, type as ``format_type`` prints it, NOT NULL),
in column order. Types outside ``pg_catalog`` (the two enums) are schema-qualified, which
is how ``format_type`` prints them whenever ``efir_budget`` is not on the search_path
(the default); :func:`read_columns` reads a database the same way."""

_ON_VERSION = (
    f"FOREIGN KEY (budget_version_id) REFERENCES {SCHEMA}.budget_versions(id) ON DELETE CASCADE"
)

# Table constraints besides the primary key on id, unnamed (PostgreSQL picks the names).
_CONSTRAINTS: dict[str, list[str]] = {
    "organizations": [],
    "budget_versions": [
        f"FOREIGN KEY (approved_by_id) REFERENCES {SCHEMA}.users(id)",
        f"FOREIGN KEY (organization_id) REFERENCES {SCHEMA}.organizations(id) ON DELETE CASCADE",
        f"FOREIGN KEY (parent_version_id) REFERENCES {SCHEMA}.budget_versions(id)",
        f"FOREIGN KEY (submitted_by_id) REFERENCES {SCHEMA}.users(id)",
    ],
    "academic_cycles": [],
    "academic_levels": [f"FOREIGN KEY (cycle_id) REFERENCES {SCHEMA}.academic_cycles(id)"],
    "nationality_types": [],
    "teacher_categories": [],
    "subjects": [],
    "enrollment_plans": [
        "CHECK (student_count >= 0)",
        "UNIQUE (budget_version_id, level_id, nationality_type_id)",
        _ON_VERSION,
        f"FOREIGN KEY (level_id) REFERENCES {SCHEMA}.academic_levels(id)",
        f"FOREIGN KEY (nationality_type_id) REFERENCES {SCHEMA}.nationality_types(id)",
    ],
    "class_structures": [
        "CHECK (avg_class_size > 0 AND avg_class_size <= 35)",
        "CHECK (number_of_classes > 0)",
        "CHECK (total_students >= 0)",
        "UNIQUE (budget_version_id, level_id)",
        _ON_VERSION,
        f"FOREIGN KEY (level_id) REFERENCES {SCHEMA}.academic_levels(id)",
    ],
    "dhg_teacher_requirements": [
        "CHECK (simple_fte >= 0)",
        "CHECK (total_hours_per_week >= 0)",
        "UNIQUE (budget_version_id, subject_id)",
        _ON_VERSION,
        f"FOREIGN KEY (subject_id) REFERENCES {SCHEMA}.subjects(id)",
    ],
    "teacher_allocations": [
        "CHECK (fte_count > 0)",
        "UNIQUE (budget_version_id, subject_id, cycle_id, category_id)",
        _ON_VERSION,
        f"FOREIGN KEY (category_id) REFERENCES {SCHEMA}.teacher_categories(id)",
        f"FOREIGN KEY (cycle_id) REFERENCES {SCHEMA}.academic_cycles(id)",
        f"FOREIGN KEY (subject_id) REFERENCES {SCHEMA}.subjects(id)",
    ],
    "revenue_plans": [
        "CHECK (amount_sar >= 0)",
        "UNIQUE (budget_version_id, account_code)",
        _ON_VERSION,
    ],
    "personnel_cost_plans": [
        "CHECK (unit_cost_sar >= 0 AND total_cost_sar >= 0)",
        "CHECK (fte_count >= 0)",
        "UNIQUE (budget_version_id, account_code, cycle_id, category_id)",
        _ON_VERSION,
        f"FOREIGN KEY (category_id) REFERENCES {SCHEMA}.teacher_categories(id)",
        f"FOREIGN KEY (cycle_id) REFERENCES {SCHEMA}.academic_cycles(id)",
    ],
    "operating_cost_plans": [
        "CHECK (amount_sar >= 0)",
        "UNIQUE (budget_version_id, account_code)",
        _ON_VERSION,
    ],
    "capex_plans": [
        "CHECK (unit_cost_sar >= 0 AND total_cost_sar >= 0)",
        "CHECK (useful_life_years > 0 AND useful_life_years <= 50)",
        "CHECK (quantity > 0)",
        "UNIQUE (budget_version_id, account_code, description)",
        _ON_VERSION,
    ],
    "budget_consolidations": [
        "CHECK (amount_sar >= 0 OR is_revenue = false)",
        "UNIQUE (budget_version_id, account_code)",
        _ON_VERSION,
    ],
}

# --------------------------------------------------------------------------------------
# The thirty-nine tables the views never read
# --------------------------------------------------------------------------------------

OTHER_TABLES: tuple[str, ...] = (
    "actual_data",
    "aefe_positions",
    "budget_vs_actual",
    "class_size_params",
    "dashboard_configs",
    "dashboard_widgets",
    "dhg_subject_hours",
    "employee_salaries",
    "employees",
    "enrollment_derived_parameters",
    "enrollment_global_overrides",
    "enrollment_grade_overrides",
    "enrollment_lateral_entry_defaults",
    "enrollment_level_overrides",
    "enrollment_parameter_overrides",
    "enrollment_projection_configs",
    "enrollment_projections",
    "enrollment_scenario_multipliers",
    "enrollment_scenarios",
    "eos_provisions",
    "fee_categories",
    "fee_structure",
    "financial_statement_lines",
    "financial_statements",
    "historical_actuals",
    "kpi_definitions",
    "kpi_values",
    "nationality_distributions",
    "strategic_initiatives",
    "strategic_plan_projections",
    "strategic_plan_scenarios",
    "strategic_plans",
    "subject_hours_matrix",
    "system_configs",
    "teacher_cost_params",
    "timetable_constraints",
    "user_preferences",
    "users",
    "variance_explanations",
)

_VERSION_FK = f"budget_version_id uuid REFERENCES {SCHEMA}.budget_versions(id) ON DELETE CASCADE"


def _ref(table: str, *, cascade: bool = False) -> str:
    return f"REFERENCES {SCHEMA}.{table}(id)" + (" ON DELETE CASCADE" if cascade else "")


# Columns after ``id uuid PRIMARY KEY``. Listed so that a table comes after those it
# references: ``users`` first (budget_versions points at it), then the ones that need
# only the reference tables, then those hanging off budget_versions.
_EARLY_OTHER_TABLES = ("users",)
_OTHER_COLUMNS: dict[str, list[str]] = {
    "users": [
        "email text NOT NULL UNIQUE",
        "full_name text",
        "is_active boolean NOT NULL",
    ],
    "user_preferences": [
        f"user_id uuid NOT NULL {_ref('users', cascade=True)}",
        "preferences jsonb",
    ],
    "system_configs": ["key character varying(100) NOT NULL", "value jsonb"],
    "dashboard_configs": [
        "name character varying(100) NOT NULL",
        f"owner_id uuid {_ref('users')}",
        "layout jsonb",
    ],
    "dashboard_widgets": [
        f"dashboard_id uuid NOT NULL {_ref('dashboard_configs', cascade=True)}",
        "widget_type character varying(50) NOT NULL",
        "position integer NOT NULL",
    ],
    "employees": [
        "employee_code character varying(20) NOT NULL UNIQUE",
        "full_name text NOT NULL",
        f"category_id uuid {_ref('teacher_categories')}",
        "is_active boolean NOT NULL",
    ],
    "employee_salaries": [
        f"employee_id uuid NOT NULL {_ref('employees', cascade=True)}",
        "effective_from date NOT NULL",
        "basic_salary_sar numeric(12,2) NOT NULL",
        "housing_allowance_sar numeric(12,2) NOT NULL",
    ],
    "aefe_positions": [
        f"cycle_id uuid {_ref('academic_cycles')}",
        "position_count integer NOT NULL",
        "prrd_rate_eur numeric(12,2)",
    ],
    "teacher_cost_params": [
        f"category_id uuid {_ref('teacher_categories')}",
        "fiscal_year integer NOT NULL",
        "avg_cost_sar numeric(12,2)",
    ],
    "class_size_params": [
        f"level_id uuid {_ref('academic_levels')}",
        "min_class_size integer NOT NULL",
        "target_class_size integer NOT NULL",
        "max_class_size integer NOT NULL",
    ],
    "subject_hours_matrix": [
        f"subject_id uuid NOT NULL {_ref('subjects')}",
        f"level_id uuid NOT NULL {_ref('academic_levels')}",
        "hours_per_week numeric(5,2) NOT NULL",
    ],
    "timetable_constraints": [
        f"level_id uuid {_ref('academic_levels')}",
        "max_hours_per_day numeric(4,2)",
    ],
    "nationality_distributions": [
        f"level_id uuid {_ref('academic_levels')}",
        f"nationality_type_id uuid {_ref('nationality_types')}",
        "share_percent numeric(5,2)",
    ],
    "fee_categories": ["code character varying(20) NOT NULL", "name text NOT NULL"],
    "fee_structure": [
        f"fee_category_id uuid {_ref('fee_categories')}",
        f"level_id uuid {_ref('academic_levels')}",
        "amount_sar numeric(12,2) NOT NULL",
    ],
    "kpi_definitions": ["code character varying(50) NOT NULL", "name text NOT NULL"],
    "historical_actuals": [
        "fiscal_year integer NOT NULL",
        "account_code character varying(20) NOT NULL",
        "amount_sar numeric(15,2) NOT NULL",
    ],
    "actual_data": [
        "fiscal_year integer NOT NULL",
        "period integer NOT NULL",
        "account_code character varying(20) NOT NULL",
        "amount_sar numeric(15,2) NOT NULL",
    ],
    "enrollment_scenarios": [
        "code character varying(20) NOT NULL",
        "name text NOT NULL",
        "growth_rate numeric(6,4)",
    ],
    "enrollment_scenario_multipliers": [
        f"scenario_id uuid NOT NULL {_ref('enrollment_scenarios', cascade=True)}",
        f"level_id uuid {_ref('academic_levels')}",
        "multiplier numeric(6,4) NOT NULL",
    ],
    "enrollment_lateral_entry_defaults": [
        f"level_id uuid {_ref('academic_levels')}",
        "entry_count integer NOT NULL",
    ],
    "strategic_plans": ["name text NOT NULL", "base_year integer NOT NULL"],
    "strategic_plan_scenarios": [
        f"strategic_plan_id uuid NOT NULL {_ref('strategic_plans', cascade=True)}",
        "name text NOT NULL",
    ],
    "strategic_plan_projections": [
        f"scenario_id uuid NOT NULL {_ref('strategic_plan_scenarios', cascade=True)}",
        "fiscal_year integer NOT NULL",
        "amount_sar numeric(15,2)",
    ],
    "strategic_initiatives": [
        f"strategic_plan_id uuid NOT NULL {_ref('strategic_plans', cascade=True)}",
        "name text NOT NULL",
        "capex_sar numeric(15,2)",
    ],
    # The ones below hang off budget_versions: deleting a version cascades into them.
    "budget_vs_actual": [
        _VERSION_FK,
        "account_code character varying(20) NOT NULL",
        "budget_sar numeric(15,2) NOT NULL",
        "actual_sar numeric(15,2)",
    ],
    "variance_explanations": [
        f"budget_vs_actual_id uuid {_ref('budget_vs_actual', cascade=True)}",
        "explanation text NOT NULL",
    ],
    "kpi_values": [
        _VERSION_FK,
        f"kpi_definition_id uuid {_ref('kpi_definitions')}",
        "value numeric(15,4)",
    ],
    "enrollment_projections": [
        _VERSION_FK,
        f"level_id uuid {_ref('academic_levels')}",
        "fiscal_year integer NOT NULL",
        "projected_students integer NOT NULL",
    ],
    "enrollment_projection_configs": [_VERSION_FK, "projection_years integer NOT NULL"],
    "enrollment_derived_parameters": [
        _VERSION_FK,
        "parameter_name character varying(50) NOT NULL",
        "value numeric(10,4)",
    ],
    "enrollment_global_overrides": [_VERSION_FK, "growth_rate numeric(6,4)"],
    "enrollment_grade_overrides": [
        _VERSION_FK,
        f"level_id uuid {_ref('academic_levels')}",
        "student_count integer",
    ],
    "enrollment_level_overrides": [
        _VERSION_FK,
        f"cycle_id uuid {_ref('academic_cycles')}",
        "retention_rate numeric(6,4)",
    ],
    "enrollment_parameter_overrides": [
        _VERSION_FK,
        "parameter_name character varying(50) NOT NULL",
        "value numeric(10,4)",
    ],
    "dhg_subject_hours": [
        _VERSION_FK,
        f"subject_id uuid {_ref('subjects')}",
        f"level_id uuid {_ref('academic_levels')}",
        "hours_per_week numeric(5,2) NOT NULL",
    ],
    "eos_provisions": [
        _VERSION_FK,
        f"employee_id uuid {_ref('employees')}",
        "provision_sar numeric(12,2) NOT NULL",
    ],
    "financial_statements": [
        _VERSION_FK,
        "statement_type character varying(50) NOT NULL",
    ],
    "financial_statement_lines": [
        f"statement_id uuid NOT NULL {_ref('financial_statements', cascade=True)}",
        "line_code character varying(20) NOT NULL",
        "amount_sar numeric(15,2)",
    ],
}

# --------------------------------------------------------------------------------------
# The app's two old materialized views
# --------------------------------------------------------------------------------------

OLD_KPI_COLUMNS: tuple[str, ...] = (
    "budget_version_id",
    "fiscal_year",
    "status",
    "version_name",
    "last_updated",
    "french_students",
    "saudi_students",
    "other_students",
    "total_students",
    "total_classes",
    "avg_class_size_overall",
    "total_atsem_required",
    "total_dhg_hours",
    "total_fte_required",
    "total_rounded_fte",
    "total_hsa_hours",
    "aefe_detached_fte",
    "aefe_funded_fte",
    "local_fte",
    "total_allocated_fte",
    "tuition_revenue_sar",
    "fees_revenue_sar",
    "total_revenue_sar",
    "teaching_salaries_sar",
    "other_personnel_sar",
    "total_personnel_costs_sar",
    "total_operating_costs_sar",
    "total_capex_sar",
    "revenue_per_student_sar",
    "students_per_teaching_hour",
    "avg_students_per_class",
    "personnel_cost_per_student_sar",
    "net_budget_sar",
    "budget_margin_percent",
)

OLD_CONSOLIDATION_COLUMNS: tuple[str, ...] = (
    "budget_version_id",
    "fiscal_year",
    "status",
    "account_code",
    "account_name",
    "consolidation_category",
    "is_revenue",
    "total_amount_sar",
    "source_count",
    "revenue_line_count",
    "last_updated",
)

# The defect, kept: all child tables are joined to the version side by side and summed
# only afterwards, so e.g. total_revenue_sar counts every revenue line once per
# enrollment row (times class rows, times DHG rows, ...).
_S = SCHEMA
_KPI_VIEW_SQL = f"""
CREATE MATERIALIZED VIEW {_S}.{KPI_VIEW} AS
SELECT
    bv.id AS budget_version_id,
    bv.fiscal_year,
    bv.status,
    bv.name AS version_name,
    bv.updated_at AS last_updated,
    COALESCE(SUM(ep.student_count) FILTER (WHERE nt.code = 'FRENCH'), 0) AS french_students,
    COALESCE(SUM(ep.student_count) FILTER (WHERE nt.code = 'SAUDI'), 0) AS saudi_students,
    COALESCE(SUM(ep.student_count) FILTER (WHERE nt.code = 'OTHER'), 0) AS other_students,
    COALESCE(SUM(ep.student_count), 0) AS total_students,
    COALESCE(SUM(cs.number_of_classes), 0) AS total_classes,
    AVG(cs.avg_class_size) AS avg_class_size_overall,
    COALESCE(SUM(cs.atsem_count), 0) AS total_atsem_required,
    COALESCE(SUM(dhg.total_hours_per_week), 0) AS total_dhg_hours,
    COALESCE(SUM(dhg.simple_fte), 0) AS total_fte_required,
    COALESCE(SUM(dhg.rounded_fte), 0) AS total_rounded_fte,
    COALESCE(SUM(dhg.hsa_hours), 0) AS total_hsa_hours,
    COALESCE(SUM(ta.fte_count) FILTER (WHERE tc.code = 'AEFE_DETACHED'), 0) AS aefe_detached_fte,
    COALESCE(SUM(ta.fte_count) FILTER (WHERE tc.code = 'AEFE_FUNDED'), 0) AS aefe_funded_fte,
    COALESCE(SUM(ta.fte_count) FILTER (WHERE tc.code = 'LOCAL'), 0) AS local_fte,
    COALESCE(SUM(ta.fte_count), 0) AS total_allocated_fte,
    COALESCE(SUM(rp.amount_sar) FILTER (WHERE rp.account_code LIKE '701%'), 0)
        AS tuition_revenue_sar,
    COALESCE(SUM(rp.amount_sar) FILTER (
        WHERE rp.account_code LIKE '702%' OR rp.account_code LIKE '703%'), 0)
        AS fees_revenue_sar,
    COALESCE(SUM(rp.amount_sar), 0) AS total_revenue_sar,
    COALESCE(SUM(pc.total_cost_sar) FILTER (WHERE pc.account_code LIKE '6411%'), 0)
        AS teaching_salaries_sar,
    COALESCE(SUM(pc.total_cost_sar) FILTER (WHERE pc.account_code NOT LIKE '6411%'), 0)
        AS other_personnel_sar,
    COALESCE(SUM(pc.total_cost_sar), 0) AS total_personnel_costs_sar,
    COALESCE(SUM(oc.amount_sar), 0) AS total_operating_costs_sar,
    COALESCE(SUM(cx.total_cost_sar), 0) AS total_capex_sar,
    ROUND(SUM(rp.amount_sar) / NULLIF(SUM(ep.student_count), 0), 2) AS revenue_per_student_sar,
    ROUND(SUM(ep.student_count)::numeric / NULLIF(SUM(dhg.total_hours_per_week), 0), 2)
        AS students_per_teaching_hour,
    ROUND(SUM(ep.student_count)::numeric / NULLIF(SUM(cs.number_of_classes), 0), 2)
        AS avg_students_per_class,
    ROUND(SUM(pc.total_cost_sar) / NULLIF(SUM(ep.student_count), 0), 2)
        AS personnel_cost_per_student_sar,
    COALESCE(SUM(rp.amount_sar), 0) - COALESCE(SUM(pc.total_cost_sar), 0)
        - COALESCE(SUM(oc.amount_sar), 0) - COALESCE(SUM(cx.total_cost_sar), 0)
        AS net_budget_sar,
    ROUND(
        (COALESCE(SUM(rp.amount_sar), 0) - COALESCE(SUM(pc.total_cost_sar), 0)
         - COALESCE(SUM(oc.amount_sar), 0) - COALESCE(SUM(cx.total_cost_sar), 0))
        / NULLIF(SUM(rp.amount_sar), 0) * 100, 2) AS budget_margin_percent
FROM {_S}.budget_versions bv
LEFT JOIN {_S}.enrollment_plans ep
    ON ep.budget_version_id = bv.id AND ep.deleted_at IS NULL
LEFT JOIN {_S}.nationality_types nt ON nt.id = ep.nationality_type_id
LEFT JOIN {_S}.class_structures cs
    ON cs.budget_version_id = bv.id AND cs.deleted_at IS NULL
LEFT JOIN {_S}.dhg_teacher_requirements dhg
    ON dhg.budget_version_id = bv.id AND dhg.deleted_at IS NULL
LEFT JOIN {_S}.teacher_allocations ta
    ON ta.budget_version_id = bv.id AND ta.deleted_at IS NULL
LEFT JOIN {_S}.teacher_categories tc ON tc.id = ta.category_id
LEFT JOIN {_S}.revenue_plans rp
    ON rp.budget_version_id = bv.id AND rp.deleted_at IS NULL
LEFT JOIN {_S}.personnel_cost_plans pc
    ON pc.budget_version_id = bv.id AND pc.deleted_at IS NULL
LEFT JOIN {_S}.operating_cost_plans oc
    ON oc.budget_version_id = bv.id AND oc.deleted_at IS NULL
LEFT JOIN {_S}.capex_plans cx
    ON cx.budget_version_id = bv.id AND cx.deleted_at IS NULL
WHERE bv.deleted_at IS NULL
GROUP BY bv.id, bv.fiscal_year, bv.status, bv.name, bv.updated_at
WITH DATA
"""

# Same defect: the join to revenue_plans (there to count the version's revenue lines)
# repeats every consolidation line once per revenue line before the SUM.
_CONSOLIDATION_VIEW_SQL = f"""
CREATE MATERIALIZED VIEW {_S}.{CONSOLIDATION_VIEW} AS
SELECT
    bc.budget_version_id,
    bv.fiscal_year,
    bv.status,
    bc.account_code,
    bc.account_name,
    bc.consolidation_category,
    bc.is_revenue,
    SUM(bc.amount_sar) AS total_amount_sar,
    SUM(bc.source_count) AS source_count,
    COUNT(rp.id) AS revenue_line_count,
    MAX(bc.updated_at) AS last_updated
FROM {_S}.budget_consolidations bc
JOIN {_S}.budget_versions bv
    ON bv.id = bc.budget_version_id AND bv.deleted_at IS NULL
LEFT JOIN {_S}.revenue_plans rp
    ON rp.budget_version_id = bc.budget_version_id AND rp.deleted_at IS NULL
WHERE bc.deleted_at IS NULL
GROUP BY bc.budget_version_id, bv.fiscal_year, bv.status, bc.account_code,
         bc.account_name, bc.consolidation_category, bc.is_revenue
WITH DATA
"""

_OLD_VIEW_INDEXES = (
    f"CREATE UNIQUE INDEX idx_mv_kpi_dashboard_version ON {_S}.{KPI_VIEW} (budget_version_id)",
    f"CREATE INDEX idx_mv_kpi_dashboard_fiscal_year_status ON {_S}.{KPI_VIEW} (fiscal_year, status)",
    f"CREATE INDEX idx_mv_consolidation_version_account"
    f" ON {_S}.{CONSOLIDATION_VIEW} (budget_version_id, account_code)",
    f"CREATE INDEX idx_mv_consolidation_category ON {_S}.{CONSOLIDATION_VIEW} (consolidation_category)",
    f"CREATE INDEX idx_mv_consolidation_fiscal_year ON {_S}.{CONSOLIDATION_VIEW} (fiscal_year)",
)

# --------------------------------------------------------------------------------------
# Seed rows
# --------------------------------------------------------------------------------------

_CYCLES = (
    # code, name_fr, name_en, sort_order, requires_atsem
    ("MAT", "Maternelle", "Kindergarten", 1, True),
    ("ELEM", "Élémentaire", "Elementary", 2, False),
    ("COLL", "Collège", "Middle school", 3, False),
    ("LYC", "Lycée", "High school", 4, False),
)
_LEVELS = (
    # cycle, code, name_fr, name_en (sort_order = position, secondary from 6EME on)
    ("MAT", "PS", "Petite section", "Pre-K 3"),
    ("MAT", "MS", "Moyenne section", "Pre-K 4"),
    ("MAT", "GS", "Grande section", "Kindergarten"),
    ("ELEM", "CP", "Cours préparatoire", "Grade 1"),
    ("ELEM", "CE1", "Cours élémentaire 1", "Grade 2"),
    ("ELEM", "CE2", "Cours élémentaire 2", "Grade 3"),
    ("ELEM", "CM1", "Cours moyen 1", "Grade 4"),
    ("ELEM", "CM2", "Cours moyen 2", "Grade 5"),
    ("COLL", "6EME", "Sixième", "Grade 6"),
    ("COLL", "5EME", "Cinquième", "Grade 7"),
    ("COLL", "4EME", "Quatrième", "Grade 8"),
    ("COLL", "3EME", "Troisième", "Grade 9"),
    ("LYC", "2NDE", "Seconde", "Grade 10"),
    ("LYC", "1ERE", "Première", "Grade 11"),
    ("LYC", "TLE", "Terminale", "Grade 12"),
)
_NATIONALITIES = (
    # code, name_fr, name_en, vat_applicable, sort_order
    ("FRENCH", "Français", "French", True, 1),
    ("SAUDI", "Saoudien", "Saudi", False, 2),
    ("OTHER", "Autres", "Other", True, 3),
)
_TEACHER_CATEGORIES = (
    # code, name_fr, name_en, description, is_aefe
    ("AEFE_DETACHED", "Détaché AEFE", "AEFE detached", "Teacher detached by the AEFE", True),
    ("AEFE_FUNDED", "Résident AEFE", "AEFE funded", "Position funded by the AEFE", True),
    ("LOCAL", "Recrutement local", "Local hire", "Contract signed by the school", False),
)
_SUBJECTS = (
    # code, name_fr, name_en, category
    ("FRAN", "Français", "French", "languages"),
    ("ANGL", "Anglais", "English", "languages"),
    ("ARAB", "Arabe", "Arabic", "languages"),
    ("ESPA", "Espagnol", "Spanish", "languages"),
    ("ALLE", "Allemand", "German", "languages"),
    ("LATN", "Latin", "Latin", "languages"),
    ("MATH", "Mathématiques", "Mathematics", "sciences"),
    ("PHYS", "Physique-chimie", "Physics-chemistry", "sciences"),
    ("SVT", "Sciences de la vie et de la Terre", "Life and earth sciences", "sciences"),
    ("TECH", "Technologie", "Technology", "sciences"),
    ("NSI", "Numérique et sciences informatiques", "Computer science", "sciences"),
    ("HIST", "Histoire-géographie", "History-geography", "humanities"),
    ("EMC", "Enseignement moral et civique", "Civics", "humanities"),
    ("PHIL", "Philosophie", "Philosophy", "humanities"),
    ("SES", "Sciences économiques et sociales", "Economics and social sciences", "humanities"),
    ("ISLA", "Études islamiques", "Islamic studies", "humanities"),
    ("ARTS", "Arts plastiques", "Visual arts", "arts"),
    ("MUSI", "Éducation musicale", "Music", "arts"),
    ("EPS", "Éducation physique et sportive", "Physical education", "sports"),
    ("POLY", "Polyvalent (premier degré)", "Primary generalist", "general"),
)
_USERS = (
    ("admin@efir.example", "Budget Administrator"),
    ("finance@efir.example", "Finance Director"),
    ("principal@efir.example", "School Principal"),
)
_EMPLOYEES = (
    # code, full name, teacher category, [(effective_from, basic, housing)]
    ("E0001", "Claire Martin", "AEFE_DETACHED", [("2024-09-01", 18000, 4500)]),
    ("E0002", "Omar Al-Harbi", "LOCAL", [("2023-09-01", 9000, 2250), ("2024-09-01", 9500, 2375)]),
    ("E0003", "Julien Bernard", "AEFE_FUNDED", [("2024-09-01", 15000, 3750)]),
)


# --------------------------------------------------------------------------------------
# Building it
# --------------------------------------------------------------------------------------


def _app_table_ddl(table: str) -> str:
    parts = [
        f"{name} {type_}{' NOT NULL' if not_null else ''}"
        for name, type_, not_null in SOURCE_COLUMNS[table]
    ]
    parts.append("PRIMARY KEY (id)")
    parts.extend(_CONSTRAINTS[table])
    body = ",\n    ".join(parts)
    return f"CREATE TABLE {SCHEMA}.{table} (\n    {body}\n)"


def _other_table_ddl(table: str) -> str:
    body = ",\n    ".join(["id uuid PRIMARY KEY", *_OTHER_COLUMNS[table]])
    return f"CREATE TABLE {SCHEMA}.{table} (\n    {body}\n)"


def _seed(conn: psycopg.Connection[Any]) -> None:
    s = SCHEMA
    stamps = "gen_random_uuid(), now(), now()"
    conn.execute(
        f"INSERT INTO {s}.organizations (id, name, is_active) VALUES (gen_random_uuid(), %s, true)",
        (ORGANIZATION_NAME,),
    )
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {s}.users (id, email, full_name, is_active)"
            " VALUES (gen_random_uuid(), %s, %s, true)",
            _USERS,
        )
        cur.executemany(
            f"INSERT INTO {s}.academic_cycles"
            " (code, name_fr, name_en, sort_order, requires_atsem, id, created_at, updated_at)"
            f" VALUES (%s, %s, %s, %s, %s, {stamps})",
            _CYCLES,
        )
        secondary = False
        level_rows = []
        for position, (cycle, code, name_fr, name_en) in enumerate(_LEVELS, start=1):
            secondary = secondary or code == "6EME"
            level_rows.append((cycle, code, name_fr, name_en, position, secondary))
        cur.executemany(
            f"INSERT INTO {s}.academic_levels"
            " (cycle_id, code, name_fr, name_en, sort_order, is_secondary,"
            " id, created_at, updated_at)"
            f" SELECT c.id, %s, %s, %s, %s, %s, {stamps}"
            f" FROM {s}.academic_cycles c WHERE c.code = %s",
            [(*row[1:], row[0]) for row in level_rows],
        )
        cur.executemany(
            f"INSERT INTO {s}.nationality_types"
            " (code, name_fr, name_en, vat_applicable, sort_order, id, created_at, updated_at)"
            f" VALUES (%s, %s, %s, %s, %s, {stamps})",
            _NATIONALITIES,
        )
        cur.executemany(
            f"INSERT INTO {s}.teacher_categories"
            " (code, name_fr, name_en, description, is_aefe, id, created_at, updated_at)"
            f" VALUES (%s, %s, %s, %s, %s, {stamps})",
            _TEACHER_CATEGORIES,
        )
        cur.executemany(
            f"INSERT INTO {s}.subjects"
            " (code, name_fr, name_en, category, is_active, id, created_at, updated_at)"
            f" VALUES (%s, %s, %s, %s, true, {stamps})",
            _SUBJECTS,
        )
        cur.executemany(
            f"INSERT INTO {s}.employees (id, employee_code, full_name, category_id, is_active)"
            f" SELECT gen_random_uuid(), %s, %s, tc.id, true"
            f" FROM {s}.teacher_categories tc WHERE tc.code = %s",
            [(code, name, category) for code, name, category, _ in _EMPLOYEES],
        )
        cur.executemany(
            f"INSERT INTO {s}.employee_salaries"
            " (id, employee_id, effective_from, basic_salary_sar, housing_allowance_sar)"
            f" SELECT gen_random_uuid(), e.id, %s::date, %s, %s"
            f" FROM {s}.employees e WHERE e.employee_code = %s",
            [
                (start, basic, housing, code)
                for code, _, _, salaries in _EMPLOYEES
                for start, basic, housing in salaries
            ],
        )
    conn.execute(
        f"CREATE TABLE {s}.alembic_version ("
        " version_num character varying(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.execute(
        f"INSERT INTO {s}.alembic_version (version_num) VALUES (%s)", (APP_ALEMBIC_REVISION,)
    )


def build_budget_app(conn: psycopg.Connection[Any], *, owner: str, reader: str) -> None:
    """Create the Budget-App's schema ``efir_budget`` in the connection's database.

    ``owner`` and ``reader`` are existing roles (see :func:`create_roles`). Everything is
    created in one transaction under ``owner``'s identity, so the schema, the types, all
    tables, indexes and both old materialized views belong to ``owner``; ``reader`` gets
    ``USAGE`` on the schema and ``SELECT`` on the two old views, as the app's read-only
    role has. Needs a superuser connection in autocommit mode.
    """
    s = SCHEMA
    with conn.transaction():
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(s), sql.Identifier(owner)
            )
        )
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))

        for type_name, labels in (
            ("budgetversionstatus", BUDGET_VERSION_STATUSES),
            ("consolidationcategory", CONSOLIDATION_CATEGORIES),
        ):
            conn.execute(
                sql.SQL("CREATE TYPE {}.{} AS ENUM ({})").format(
                    sql.Identifier(s),
                    sql.Identifier(type_name),
                    sql.SQL(", ").join(sql.Literal(label) for label in labels),
                )
            )

        for table in _EARLY_OTHER_TABLES:
            conn.execute(_other_table_ddl(table))
        for table in APP_TABLES:
            conn.execute(_app_table_ddl(table))
        for table in _OTHER_COLUMNS:
            if table not in _EARLY_OTHER_TABLES:
                conn.execute(_other_table_ddl(table))

        _seed(conn)

        conn.execute(_KPI_VIEW_SQL)
        conn.execute(_CONSOLIDATION_VIEW_SQL)
        for statement in _OLD_VIEW_INDEXES:
            conn.execute(statement)
        conn.execute(
            sql.SQL("COMMENT ON MATERIALIZED VIEW {}.{} IS {}").format(
                sql.Identifier(s), sql.Identifier(KPI_VIEW), sql.Literal(KPI_VIEW_COMMENT)
            )
        )
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(s), sql.Identifier(reader)
            )
        )
        for view in (KPI_VIEW, CONSOLIDATION_VIEW):
            conn.execute(
                sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                    sql.Identifier(s), sql.Identifier(view), sql.Identifier(reader)
                )
            )
        conn.execute("RESET ROLE")


# --------------------------------------------------------------------------------------
# Reading it back
# --------------------------------------------------------------------------------------


def _pin_search_path(conn: psycopg.Connection[Any]) -> None:
    """Within the current transaction, print every name outside pg_catalog qualified."""
    conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")


def read_columns(
    conn: psycopg.Connection[Any], table: str, *, schema: str = SCHEMA
) -> list[tuple[str, str, bool]]:
    """(column, ``format_type``, NOT NULL) of a table, in column order: the shape of
    :data:`SOURCE_COLUMNS`, read from any database, whatever its search_path."""
    with conn.transaction():
        _pin_search_path(conn)
        rows = conn.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
                 FROM pg_attribute a
                WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
                  AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum""",
            (schema, table),
        ).fetchall()
    return [(name, type_, bool(not_null)) for name, type_, not_null in rows]


def snapshot_objects(conn: psycopg.Connection[Any], *, schema: str = SCHEMA) -> dict[str, Any]:
    """Everything about the schema's objects a later ``==`` must notice, as plain values.

    Keys: ``relations`` (name -> kind, owner, ACL), ``columns`` (relation -> list of
    (name, type, not null, default)), ``constraints`` (table -> sorted (name,
    definition)), ``indexes`` (name -> ``pg_get_indexdef``), ``triggers`` (table -> sorted
    (name, definition), internal triggers left out), ``views`` (materialized or plain
    view -> ``pg_get_viewdef``), ``comments`` (relation -> comment, commented ones only),
    ``types`` (name -> owner, enum labels in order), ``row_counts`` (table or populated
    materialized view -> ``count(*)``; ``None`` for an unpopulated one) and
    ``alembic_version`` (sorted revisions, ``None`` without the table). Names are
    printed with only pg_catalog on the search_path, so the result does not depend on
    the connection's settings. A test wanting only part of it compares those keys.
    """
    snap: dict[str, Any] = {}
    with conn.transaction():
        _pin_search_path(conn)

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query, {"schema": schema}).fetchall()

        in_schema = "c.relnamespace = %(schema)s::regnamespace"
        snap["relations"] = {
            name: (kind, owner, acl)
            for name, kind, owner, acl in rows(
                f"""SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
                           c.relacl::text
                      FROM pg_class c WHERE {in_schema}"""
            )
        }
        columns: dict[str, list[tuple[Any, ...]]] = {}
        for rel, name, type_, not_null, default in rows(
            f"""SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                       a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
                  FROM pg_class c
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                                     AND NOT a.attisdropped
                  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
                 WHERE {in_schema}
                 ORDER BY c.relname, a.attnum"""
        ):
            columns.setdefault(rel, []).append((name, type_, not_null, default))
        snap["columns"] = columns
        constraints: dict[str, list[tuple[str, str]]] = {}
        for rel, name, definition in rows(
            f"""SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
                  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                 WHERE {in_schema} ORDER BY c.relname, k.conname"""
        ):
            constraints.setdefault(rel, []).append((name, definition))
        snap["constraints"] = constraints
        snap["indexes"] = dict(
            rows(
                f"""SELECT c.relname, pg_get_indexdef(c.oid)
                      FROM pg_class c WHERE {in_schema} AND c.relkind IN ('i', 'I')"""
            )
        )
        triggers: dict[str, list[tuple[str, str]]] = {}
        for rel, name, definition in rows(
            f"""SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
                  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 WHERE {in_schema} AND NOT t.tgisinternal ORDER BY c.relname, t.tgname"""
        ):
            triggers.setdefault(rel, []).append((name, definition))
        snap["triggers"] = triggers
        snap["views"] = dict(
            rows(
                f"""SELECT c.relname, pg_get_viewdef(c.oid)
                      FROM pg_class c WHERE {in_schema} AND c.relkind IN ('m', 'v')"""
            )
        )
        snap["comments"] = dict(
            rows(
                f"""SELECT c.relname, obj_description(c.oid, 'pg_class')
                      FROM pg_class c
                     WHERE {in_schema} AND obj_description(c.oid, 'pg_class') IS NOT NULL"""
            )
        )
        snap["types"] = {
            name: (owner, list(labels) if labels is not None else None)
            for name, owner, labels in rows(
                """SELECT t.typname, pg_get_userbyid(t.typowner),
                          (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                             FROM pg_enum e WHERE e.enumtypid = t.oid)
                     FROM pg_type t
                     LEFT JOIN pg_class r ON r.oid = t.typrelid
                    WHERE t.typnamespace = %(schema)s::regnamespace
                      AND (t.typtype IN ('e', 'd') OR r.relkind = 'c')"""
            )
        }
        counts: dict[str, int | None] = {}
        for name, kind, populated in rows(
            f"""SELECT c.relname, c.relkind::text, c.relispopulated
                  FROM pg_class c WHERE {in_schema} AND c.relkind IN ('r', 'p', 'm')
                 ORDER BY c.relname"""
        ):
            if kind == "m" and not populated:
                counts[name] = None
                continue
            counts[name] = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(name)
                )
            ).fetchone()[0]
        snap["row_counts"] = counts
        snap["alembic_version"] = (
            [
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT version_num FROM {}.alembic_version ORDER BY 1").format(
                        sql.Identifier(schema)
                    )
                )
            ]
            if "alembic_version" in snap["relations"]
            else None
        )
    return snap


# --------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------


def create_roles(conn: psycopg.Connection[Any], suffix: str) -> tuple[str, str]:
    """Create (if missing) the NOLOGIN roles ``budget_app_owner_<suffix>`` and
    ``budget_app_reader_<suffix>``; return their names (owner, reader).

    Roles belong to the whole server, not to one database: give each test run its own
    suffix and drop them with :func:`drop_roles`.
    """
    names = (f"budget_app_owner_{suffix}", f"budget_app_reader_{suffix}")
    for name in names:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    return names


def drop_roles(conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
    """Drop the roles, after handing what they own in the connection's database to the
    connected user and revoking their privileges there (missing roles are skipped).

    Ownership is per database: drop (or clean) the other databases the roles own
    objects in first, or ``DROP ROLE`` fails.
    """
    for name in names:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            continue
        role = sql.Identifier(name)
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))
