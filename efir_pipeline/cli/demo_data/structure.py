"""Inserts of the school structure: schools, budget versions, enrollment, classes.

Every later plan hangs on these: classes are derived from the enrollment, and the
teaching hours, tuition and most costs from the classes and students.
"""

from __future__ import annotations

from psycopg import sql

from efir_pipeline.cli.demo_data.curriculum import (
    CLASS_CALCULATION_METHOD,
    CYCLES,
    LEVEL_SHARES,
    NATIONALITIES,
)
from efir_pipeline.cli.demo_data.sqlkit import literal, values


def insert_organizations() -> sql.Composable:
    return sql.SQL(
        """
        INSERT INTO efir_budget.organizations (id, name, is_active)
        SELECT id, name, true FROM _demo_orgs ORDER BY org_no
        """
    )


def insert_budget_versions() -> sql.Composable:
    return sql.SQL(
        """
        INSERT INTO efir_budget.budget_versions
            (id, organization_id, name, fiscal_year, academic_year, status, submitted_at,
             approved_at, notes, is_baseline, parent_version_id, created_at, updated_at)
        SELECT id, organization_id, name, fiscal_year, academic_year,
               status::efir_budget.budgetversionstatus, submitted_at, approved_at, notes,
               is_baseline, parent_version_id, created_at, updated_at
        FROM _demo_versions
        ORDER BY organization_id, fiscal_year, slot
        """
    )


def insert_enrollment_plans() -> sql.Composable:
    """Students per level and nationality: the school's size x level share x nationality mix."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.enrollment_plans
            (id, budget_version_id, level_id, nationality_type_id, student_count,
             created_at, updated_at)
        SELECT pg_temp.demo_id('enrollment_plans:' || k.key),
               v.id, l.id, n.id,
               round(v.students * ls.percent / 100
                     * pg_temp.demo_jitter(v.key || ':' || l.code, 0.06)
                     * ns.share * pg_temp.demo_jitter(k.key, 0.10))::integer,
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM _demo_versions AS v
        CROSS JOIN efir_budget.academic_levels AS l
        JOIN {level_shares} AS ls (code, percent) ON ls.code = l.code
        CROSS JOIN efir_budget.nationality_types AS n
        JOIN {nationality_shares} AS ns (code, share) ON ns.code = n.code
        CROSS JOIN LATERAL (SELECT v.key || ':' || l.code || ':' || n.code AS key) AS k
        """
    ).format(
        level_shares=values(LEVEL_SHARES.items()),
        nationality_shares=values((code, share) for code, (share, _) in NATIONALITIES.items()),
    )


def insert_class_structures() -> sql.Composable:
    """Classes per level: ceil(students / the cycle's maximum class size); ATSEM in MAT.

    A level without students has no class (and no row: a class holds at least one).
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.class_structures
            (id, budget_version_id, level_id, total_students, number_of_classes,
             avg_class_size, requires_atsem, atsem_count, calculation_method,
             created_at, updated_at)
        SELECT pg_temp.demo_id('class_structures:' || s.key),
               s.version_id, s.level_id, s.students, s.classes,
               round(s.students::numeric / s.classes, 2),
               s.requires_atsem,
               CASE WHEN s.requires_atsem THEN s.classes ELSE 0 END,
               {method},
               pg_temp.demo_created(s.created_at, s.key),
               pg_temp.demo_updated(s.created_at, s.edit_window, s.key)
        FROM (
            SELECT v.id AS version_id, v.key || ':' || l.code AS key, v.created_at,
                   v.edit_window, l.id AS level_id, c.requires_atsem,
                   sum(e.student_count)::integer AS students,
                   ceil(sum(e.student_count)::numeric / p.max_class_size)::integer AS classes
            FROM _demo_versions AS v
            JOIN efir_budget.enrollment_plans AS e ON e.budget_version_id = v.id
            JOIN efir_budget.academic_levels AS l ON l.id = e.level_id
            JOIN efir_budget.academic_cycles AS c ON c.id = l.cycle_id
            JOIN {cycles} AS p (code, max_class_size) ON p.code = c.code
            WHERE e.deleted_at IS NULL
            GROUP BY v.id, l.id, l.code, c.requires_atsem, p.max_class_size
            HAVING sum(e.student_count) > 0
        ) AS s
        """
    ).format(
        method=literal(CLASS_CALCULATION_METHOD),
        cycles=values((code, c.max_class_size) for code, c in CYCLES.items()),
    )
