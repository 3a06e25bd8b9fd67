"""Inserts of the teaching plan: weekly hours per subject (DHG) and the teachers allocated.

Both come from the same hours: classes x the curriculum's hours per class, so the FTE a
version allocates can be compared with the FTE its hours require (the FTE gap KPI).
"""

from __future__ import annotations

from psycopg import sql

from efir_pipeline.cli.demo_data.curriculum import CYCLES, LOCAL_ONLY_SUBJECTS
from efir_pipeline.cli.demo_data.sqlkit import literals, values

# Weekly hours of each (version, subject, cycle): classes x the curriculum's hours.
_HOURS_BY_CYCLE = """
    SELECT cs.budget_version_id, cu.subject_id, cu.subject_code, cu.cycle_id, cu.cycle_code,
           cu.standard_hours, sum(cs.number_of_classes * cu.hours_per_class) AS hours
    FROM efir_budget.class_structures AS cs
    JOIN _demo_versions AS v ON v.id = cs.budget_version_id
    JOIN efir_budget.academic_levels AS l ON l.id = cs.level_id
    JOIN _demo_curriculum AS cu ON cu.cycle_id = l.cycle_id
    WHERE cs.deleted_at IS NULL
    GROUP BY cs.budget_version_id, cu.subject_id, cu.subject_code, cu.cycle_id, cu.cycle_code,
             cu.standard_hours
"""


def insert_dhg_teacher_requirements() -> sql.Composable:
    """DHG per subject: hours -> FTE at 18 h (secondary) or 24 h (primary).

    rounded_fte keeps the whole posts and adds one when more than half a post is
    left; what the posts do not cover is paid as overtime (HSA).
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.dhg_teacher_requirements
            (id, budget_version_id, subject_id, total_hours_per_week, standard_teaching_hours,
             simple_fte, rounded_fte, hsa_hours, created_at, updated_at)
        SELECT pg_temp.demo_id('dhg_teacher_requirements:' || k.key),
               v.id, d.subject_id, d.hours, d.standard_hours, d.simple_fte, d.rounded_fte,
               greatest(0, d.hours - d.rounded_fte * d.standard_hours),
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM (
            SELECT t.*, round(t.hours / t.standard_hours, 2) AS simple_fte,
                   (floor(t.hours / t.standard_hours)
                    + CASE WHEN t.hours / t.standard_hours - floor(t.hours / t.standard_hours) > 0.5
                           THEN 1 ELSE 0 END)::integer AS rounded_fte
            FROM (
                SELECT h.budget_version_id, h.subject_id, h.subject_code, h.standard_hours,
                       round(sum(h.hours), 2) AS hours
                FROM ({hours}) AS h
                GROUP BY h.budget_version_id, h.subject_id, h.subject_code, h.standard_hours
            ) AS t
        ) AS d
        JOIN _demo_versions AS v ON v.id = d.budget_version_id
        CROSS JOIN LATERAL (SELECT v.key || ':' || d.subject_code AS key) AS k
        """
    ).format(hours=sql.SQL(_HOURS_BY_CYCLE))


def insert_teacher_allocations() -> sql.Composable:
    """FTE per subject x cycle x category: the need, covered, split by category.

    Each version staffs 97-104 % of its need (+/-2 % per subject and cycle), so the
    allocation is close to the requirement and sometimes under it. Arabic and Islamic
    studies are taught by local staff only; elsewhere the AEFE shares of the cycle vary
    by +/-30 % per version and subject. A category left with no FTE has no row.
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.teacher_allocations
            (id, budget_version_id, subject_id, cycle_id, category_id, fte_count,
             created_at, updated_at)
        SELECT pg_temp.demo_id('teacher_allocations:' || k.key),
               a.budget_version_id, a.subject_id, a.cycle_id, tc.id, k.fte,
               pg_temp.demo_created(a.created_at, k.key),
               pg_temp.demo_updated(a.created_at, a.edit_window, k.key)
        FROM (
            SELECT h.*, v.created_at, v.edit_window,
                   (0.97 + 0.07 * pg_temp.demo_unit(v.key || ':staffing'))::numeric
                       * pg_temp.demo_jitter(sk.key || ':coverage', 0.02) AS coverage,
                   CASE WHEN h.subject_code IN ({local_only}) THEN 0
                        ELSE p.detached_share * pg_temp.demo_jitter(sk.key || ':detached', 0.3)
                   END AS detached,
                   CASE WHEN h.subject_code IN ({local_only}) THEN 0
                        ELSE p.funded_share * pg_temp.demo_jitter(sk.key || ':funded', 0.3)
                   END AS funded,
                   sk.key AS subject_key
            FROM ({hours}) AS h
            JOIN _demo_versions AS v ON v.id = h.budget_version_id
            JOIN {cycles} AS p (code, detached_share, funded_share) ON p.code = h.cycle_code
            CROSS JOIN LATERAL (
                SELECT v.key || ':' || h.subject_code || ':' || h.cycle_code AS key
            ) AS sk
        ) AS a
        CROSS JOIN efir_budget.teacher_categories AS tc
        CROSS JOIN LATERAL (
            SELECT a.subject_key || ':' || tc.code AS key,
                   round(a.hours / a.standard_hours * a.coverage
                         * CASE tc.code WHEN 'AEFE_DETACHED' THEN a.detached
                                        WHEN 'AEFE_FUNDED' THEN a.funded
                                        ELSE 1 - a.detached - a.funded END, 2) AS fte
        ) AS k
        WHERE tc.code IN ('AEFE_DETACHED', 'AEFE_FUNDED', 'LOCAL') AND k.fte > 0
        """
    ).format(
        hours=sql.SQL(_HOURS_BY_CYCLE),
        local_only=literals(LOCAL_ONLY_SUBJECTS),
        cycles=values((code, c.detached_share, c.funded_share) for code, c in CYCLES.items()),
    )
