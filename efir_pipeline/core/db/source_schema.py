"""What the views, the change capture and the refresh engine need of the budget app's
tables: the contract ``efir-pipeline db adopt`` checks before it changes anything.

Only what is read is listed (the app's audit columns, notes and flags are not), with
a type family rather than an exact type: the app may widen a ``numeric(5,2)`` or a
``varchar(20)`` without breaking a view. A test holds this list to what PostgreSQL
records the views actually reading (``pg_depend``, column by column).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from efir_pipeline.core.catalog import SCHEMA

UUID, INTEGER, NUMERIC, TEXT, BOOLEAN, TIMESTAMPTZ = (
    "uuid", "integer", "numeric", "text", "boolean", "timestamptz",
)  # fmt: skip

AUDIT = {
    "id": UUID,
    "budget_version_id": UUID,
    "updated_at": TIMESTAMPTZ,
    "deleted_at": TIMESTAMPTZ,
}
"""What every child table of a version needs: its version, and the columns that say
when a row changed or stopped existing."""

REQUIRED_COLUMNS: dict[str, dict[str, str]] = {
    "budget_versions": {
        "id": UUID,
        "organization_id": UUID,
        "name": TEXT,
        "fiscal_year": INTEGER,
        "academic_year": TEXT,
        "status": "budgetversionstatus",
        "is_baseline": BOOLEAN,
        "approved_at": TIMESTAMPTZ,
        "updated_at": TIMESTAMPTZ,
        "deleted_at": TIMESTAMPTZ,
    },
    "academic_cycles": {"id": UUID, "code": TEXT},
    "academic_levels": {"id": UUID, "cycle_id": UUID, "code": TEXT, "sort_order": INTEGER},
    "nationality_types": {"id": UUID, "code": TEXT},
    "teacher_categories": {"id": UUID, "code": TEXT},
    "subjects": {"id": UUID, "code": TEXT, "name_en": TEXT, "category": TEXT},
    "enrollment_plans": {
        **AUDIT,
        "level_id": UUID,
        "nationality_type_id": UUID,
        "student_count": INTEGER,
    },
    "class_structures": {
        **AUDIT,
        "level_id": UUID,
        "total_students": INTEGER,
        "number_of_classes": INTEGER,
        "atsem_count": INTEGER,
    },
    "dhg_teacher_requirements": {
        **AUDIT,
        "subject_id": UUID,
        "total_hours_per_week": NUMERIC,
        "simple_fte": NUMERIC,
        "rounded_fte": INTEGER,
        "hsa_hours": NUMERIC,
    },
    "teacher_allocations": {
        **AUDIT,
        "subject_id": UUID,
        "category_id": UUID,
        "fte_count": NUMERIC,
    },
    "revenue_plans": {**AUDIT, "account_code": TEXT, "amount_sar": NUMERIC},
    "personnel_cost_plans": {
        **AUDIT,
        "account_code": TEXT,
        "cycle_id": UUID,
        "total_cost_sar": NUMERIC,
    },
    "operating_cost_plans": {**AUDIT, "amount_sar": NUMERIC},
    "capex_plans": {**AUDIT, "total_cost_sar": NUMERIC},
    "budget_consolidations": {
        **AUDIT,
        "account_code": TEXT,
        "account_name": TEXT,
        "consolidation_category": "consolidationcategory",
        "is_revenue": BOOLEAN,
        "amount_sar": NUMERIC,
        "source_count": INTEGER,
    },
}

REQUIRED_ENUMS: dict[str, tuple[str, ...]] = {
    "budgetversionstatus": ("working", "submitted", "approved", "forecast", "superseded"),
    "consolidationcategory": (
        "revenue_tuition", "revenue_fees", "revenue_other",
        "personnel_teaching", "personnel_admin", "personnel_support", "personnel_social",
        "operating_supplies", "operating_utilities", "operating_maintenance",
        "operating_insurance", "operating_other",
        "capex_equipment", "capex_it", "capex_furniture", "capex_building", "capex_software",
    ),
}  # fmt: skip
"""The enum types the views and the change log name, and every label they compare with."""

# The type family of a column as the app's database has it.
_FAMILY = """
SELECT a.attname,
       CASE
           WHEN t.typtype = 'e' THEN t.typname::text
           WHEN t.oid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN 'integer'
           WHEN t.oid = 'numeric'::regtype THEN 'numeric'
           WHEN t.oid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN 'text'
           WHEN t.oid = 'timestamptz'::regtype THEN 'timestamptz'
           ELSE format_type(a.atttypid, NULL)
       END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


@dataclass(frozen=True)
class Mismatch:
    """One thing the database lacks, said so that the fix is obvious."""

    what: str

    def __str__(self) -> str:
        return self.what


def check(conn: psycopg.Connection) -> list[Mismatch]:
    """Everything the views need that the database lacks (empty: all there)."""
    problems: list[Mismatch] = []
    for enum, labels in REQUIRED_ENUMS.items():
        problems += _check_enum(conn, enum, labels)
    for table, columns in REQUIRED_COLUMNS.items():
        problems += _check_table(conn, table, columns)
    return problems


def present_tables(conn: psycopg.Connection) -> list[str]:
    """The required tables the database has (none: an empty database)."""
    return [
        name
        for (name,) in conn.execute(
            """SELECT c.relname::text FROM pg_class c
               WHERE c.relnamespace = to_regnamespace(%s) AND c.relkind IN ('r', 'p')
                 AND c.relname = ANY(%s) ORDER BY 1""",
            (SCHEMA, list(REQUIRED_COLUMNS)),
        ).fetchall()
    ]


def _check_enum(conn: psycopg.Connection, enum: str, labels: tuple[str, ...]) -> list[Mismatch]:
    found = conn.execute(
        """SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
           FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
           WHERE t.typnamespace = to_regnamespace(%s) AND t.typname = %s""",
        (SCHEMA, enum),
    ).fetchone()[0]
    if found is None:
        return [Mismatch(f"enum type {SCHEMA}.{enum} is missing")]
    missing = [label for label in labels if label not in found]
    if missing:
        return [Mismatch(f"enum type {SCHEMA}.{enum} lacks the values {', '.join(missing)}")]
    return []


def _check_table(conn: psycopg.Connection, table: str, columns: dict[str, str]) -> list[Mismatch]:
    relation = f"{SCHEMA}.{table}"
    if conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()[0] is None:
        return [Mismatch(f"table {relation} is missing")]
    found = dict(conn.execute(_FAMILY, (relation,)).fetchall())
    problems = []
    for column, family in columns.items():
        if column not in found:
            problems.append(Mismatch(f"column {relation}.{column} ({family}) is missing"))
        elif found[column] != family:
            problems.append(
                Mismatch(f"column {relation}.{column} is {found[column]}, the views need {family}")
            )
    return problems
