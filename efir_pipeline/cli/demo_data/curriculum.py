"""The school model: how students spread over levels and nationalities, what each cycle
costs and teaches, and the weekly hours per class of each subject.

The figures are EFIR's (a French school abroad under AEFE agreement); a network school
is EFIR at another size. Everything downstream (classes, DHG hours, teacher FTE,
salaries, tuition) is derived from these few parameters, which is what keeps the
generated KPIs consistent with each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg
from psycopg import sql

from efir_pipeline.cli.demo_data.sqlkit import literal, values

# Share of a school's students in each level (percent): fewer in PS, more in elementary.
LEVEL_SHARES: dict[str, float] = {
    "PS": 5.0, "MS": 6.0, "GS": 6.5,
    "CP": 7.5, "CE1": 7.5, "CE2": 7.5, "CM1": 7.5, "CM2": 7.5,
    "6EME": 7.0, "5EME": 7.0, "4EME": 6.5, "3EME": 6.5,
    "2NDE": 6.5, "1ERE": 6.0, "TLE": 5.5,
}  # fmt: skip
EXAM_LEVELS = ("3EME", "1ERE", "TLE")  # DNB, bac de français, baccalauréat

# Nationality mix and the tuition factor of each nationality's tariff.
NATIONALITIES: dict[str, tuple[float, float]] = {
    #          share, tuition factor
    "FRENCH": (0.35, 0.92),
    "SAUDI": (0.25, 1.05),
    "OTHER": (0.40, 1.10),
}


@dataclass(frozen=True)
class Cycle:
    max_class_size: int  # at most 35 (class_structures.avg_class_size)
    weekly_hours_per_class: float  # teaching hours a class receives (DHG), all subjects
    tuition_sar: int  # yearly tuition per student in BASE_FISCAL_YEAR, before nationality
    detached_share: float  # share of teacher FTE that are AEFE detached teachers
    funded_share: float  # ... AEFE funded (résidents); the rest are local hires
    local_salary_sar: int  # yearly cost of a local teacher FTE in BASE_FISCAL_YEAR


CYCLES: dict[str, Cycle] = {
    "MAT": Cycle(24, 27.0, 31_000, 0.10, 0.22, 185_000),
    "ELEM": Cycle(26, 31.0, 34_500, 0.12, 0.22, 190_000),
    "COLL": Cycle(28, 31.5, 40_000, 0.16, 0.26, 215_000),
    "LYC": Cycle(28, 33.0, 43_000, 0.18, 0.26, 225_000),
}
# How class_structures.number_of_classes is derived: ceil(students / max_class_size).
CLASS_CALCULATION_METHOD = "max_class_size"

# Teacher categories: salary account and yearly cost per FTE borne by the school
# (LOCAL: per cycle, above).
TEACHER_CATEGORIES: dict[str, tuple[str, int | None]] = {
    "AEFE_DETACHED": ("64111", 500_000),
    "AEFE_FUNDED": ("64112", 320_000),
    "LOCAL": ("64113", None),
}
LOCAL_ONLY_SUBJECTS = ("ARAB", "ISLA")  # taught by local staff only

# Weekly hours per class of each subject in MAT, ELEM, COLL, LYC. Per cycle they are
# rescaled to the cycle's weekly_hours_per_class over the subjects the reference table
# holds; a reference subject missing here counts 1 h in each secondary cycle. A subject
# taught only in primary cycles has a 24 h teaching standard, any other 18 h.
CURRICULUM: dict[str, tuple[float, float, float, float]] = {
    "POLY": (24.0, 24.0, 0.0, 0.0),
    "ARAB": (2.0, 3.0, 3.0, 2.0),
    "ANGL": (1.0, 3.0, 3.5, 3.0),
    "ISLA": (0.0, 1.0, 1.0, 1.0),
    "FRAN": (0.0, 0.0, 4.5, 4.0),
    "MATH": (0.0, 0.0, 4.0, 4.5),
    "HIST": (0.0, 0.0, 3.0, 3.0),
    "ESPA": (0.0, 0.0, 2.5, 2.5),
    "ALLE": (0.0, 0.0, 0.5, 0.5),
    "LATN": (0.0, 0.0, 0.5, 0.5),
    "EPS": (0.0, 0.0, 3.0, 2.0),
    "SVT": (0.0, 0.0, 1.5, 2.0),
    "PHYS": (0.0, 0.0, 1.5, 3.0),
    "TECH": (0.0, 0.0, 1.5, 0.0),
    "NSI": (0.0, 0.0, 0.0, 1.0),
    "ARTS": (0.0, 0.0, 1.0, 0.5),
    "MUSI": (0.0, 0.0, 1.0, 0.5),
    "EMC": (0.0, 0.0, 0.5, 0.5),
    "SES": (0.0, 0.0, 0.0, 1.5),
    "PHIL": (0.0, 0.0, 0.0, 1.5),
}
PRIMARY_STANDARD_HOURS = 24
SECONDARY_STANDARD_HOURS = 18

assert math.isclose(sum(LEVEL_SHARES.values()), 100.0)
assert math.isclose(sum(share for share, _ in NATIONALITIES.values()), 1.0)
assert all(c.max_class_size <= 35 for c in CYCLES.values())

_CURRICULUM_SQL = """
CREATE TEMP TABLE _demo_curriculum ON COMMIT DROP AS
WITH cycles AS (
    SELECT c.id, c.code, bool_or(l.is_secondary) AS is_secondary
    FROM efir_budget.academic_cycles AS c
    JOIN efir_budget.academic_levels AS l ON l.cycle_id = c.id
    GROUP BY c.id, c.code
), weights AS (
    SELECT s.id AS subject_id, s.code AS subject_code, c.id AS cycle_id,
           c.code AS cycle_code, c.is_secondary,
           CASE WHEN k.subject_code IS NULL THEN
                    CASE WHEN c.is_secondary THEN 1.0 ELSE 0.0 END
                WHEN c.code = 'MAT' THEN k.mat
                WHEN c.code = 'ELEM' THEN k.elem
                WHEN c.code = 'COLL' THEN k.coll
                WHEN c.code = 'LYC' THEN k.lyc
                ELSE 0.0
           END::numeric AS weight
    FROM efir_budget.subjects AS s
    CROSS JOIN cycles AS c
    LEFT JOIN {curriculum} AS k (subject_code, mat, elem, coll, lyc) ON k.subject_code = s.code
    WHERE s.is_active
)
SELECT w.subject_id, w.subject_code, w.cycle_id, w.cycle_code,
       w.weight * p.weekly_hours / sum(w.weight) OVER (PARTITION BY w.cycle_id)
           AS hours_per_class,
       CASE WHEN bool_or(w.is_secondary) OVER (PARTITION BY w.subject_id)
            THEN {secondary} ELSE {primary} END::numeric AS standard_hours
FROM weights AS w
JOIN {cycles} AS p (code, weekly_hours) ON p.code = w.cycle_code
WHERE w.weight > 0
"""


def create_curriculum(cur: psycopg.Cursor) -> None:
    """Weekly hours per class of each active (subject, cycle), scaled to the cycle's total."""
    cur.execute(
        sql.SQL(_CURRICULUM_SQL).format(
            curriculum=values((code, *hours) for code, hours in CURRICULUM.items()),
            cycles=values((code, c.weekly_hours_per_class) for code, c in CYCLES.items()),
            secondary=literal(SECONDARY_STANDARD_HOURS),
            primary=literal(PRIMARY_STANDARD_HOURS),
        )
    )
    cur.execute("ANALYZE _demo_curriculum")
