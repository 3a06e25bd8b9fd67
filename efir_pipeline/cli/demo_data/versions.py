"""The budget versions every generated school gets, and their calendar.

Fiscal year N is the school year that starts in September N (academic year
``'N-(N+1)'``): its initial budget is drafted from February of N, approved in the
spring, and revised in the autumn of N and the winter after. Each school gets the same
set of version specs; only sizes, prices and timestamps differ per school.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from efir_pipeline.cli.demo_data.errors import DemoDataError

LATEST_FISCAL_YEAR = 2026
BASE_FISCAL_YEAR = 2025  # the year the sizes and prices of the model are given for
EARLIEST_FISCAL_YEAR = 2000  # no budget older than that: a longer history is a typo
VERSIONS_PER_YEAR = 4
TIMEZONE = "Asia/Riyadh"
PRICE_GROWTH = 0.03  # tuition, salaries and costs per year

_NOTES = {
    "working": "Version de travail en cours",
    "submitted": "Soumise au conseil d'établissement",
    "approved": "Approuvée par le conseil d'établissement",
    "forecast": "Prévision de clôture de l'exercice",
    "superseded": "Remplacée par une version ultérieure",
}


@dataclass(frozen=True)
class VersionSpec:
    """One budget version of every generated school (the same set for each)."""

    fiscal_year: int
    slot: int  # 0 draft, 1 initial budget, 2 first revision, 3 second revision
    status: str

    @property
    def name(self) -> str:
        fy = self.fiscal_year
        return (
            f"Budget initial {fy} - brouillon",
            f"Budget initial {fy}",
            f"Révision 1 {fy}",
            f"Révision 2 {fy}",
        )[self.slot]

    @property
    def is_baseline(self) -> bool:
        return self.status == "approved" and self.slot == 1

    @property
    def notes(self) -> str:
        return _NOTES[self.status]

    @property
    def created_on(self) -> date:
        fy = self.fiscal_year
        if self.slot == 3 and self.status != "working":
            return date(fy + 1, 1, 18)
        return (date(fy, 2, 2), date(fy, 3, 9), date(fy, 9, 28), date(fy, 11, 2))[self.slot]


def academic_year(fiscal_year: int) -> str:
    """Fiscal year N is the school year starting in September N."""
    return f"{fiscal_year}-{fiscal_year + 1}"


def efir_versions() -> list[VersionSpec]:
    """EFIR's own set: 10 versions over fiscal 2024-2026, every status present."""
    specs = []
    for fy in (2024, 2025):
        specs += [VersionSpec(fy, 0, "superseded"), VersionSpec(fy, 1, "approved")]
        specs += [VersionSpec(fy, 2, "forecast")]
    specs += [
        VersionSpec(2026, 0, "superseded"),
        VersionSpec(2026, 1, "approved"),
        VersionSpec(2026, 2, "submitted"),
        VersionSpec(2026, 3, "working"),
    ]
    return specs


def network_versions(count: int) -> list[VersionSpec]:
    """``count`` versions, four per fiscal year, ending in LATEST_FISCAL_YEAR.

    Per year: a superseded draft, the approved initial budget, a first revision
    (forecast, or submitted in the latest year) and a second revision (forecast); the
    very last version is the one working version. The schema no longer enforces one
    live working version per school and year; this set keeps to it anyway.
    """
    last_year = (count - 1) // VERSIONS_PER_YEAR
    specs = []
    for i in range(count):
        year, slot = divmod(i, VERSIONS_PER_YEAR)
        if i == count - 1:
            status = "working"
        elif slot == 2 and year == last_year:
            status = "submitted"
        else:
            status = ("superseded", "approved", "forecast", "forecast")[slot]
        specs.append(VersionSpec(LATEST_FISCAL_YEAR - last_year + year, slot, status))
    return specs


def version_specs(orgs: int, versions_per_org: int | None) -> list[VersionSpec]:
    """The set each school gets, or DemoDataError for arguments out of range."""
    if not isinstance(orgs, int) or isinstance(orgs, bool) or orgs < 1:
        raise DemoDataError(f"orgs must be a positive integer (got {orgs!r})")
    if versions_per_org is None:
        return efir_versions()
    max_versions = VERSIONS_PER_YEAR * (LATEST_FISCAL_YEAR - EARLIEST_FISCAL_YEAR + 1)
    if not isinstance(versions_per_org, int) or not 1 <= versions_per_org <= max_versions:
        raise DemoDataError(
            f"versions_per_org must be between 1 and {max_versions} (got {versions_per_org!r})"
        )
    return network_versions(versions_per_org)


# Every school x every version spec, with its size, price index and timestamps.
_VERSIONS_SQL = """
CREATE TEMP TABLE _demo_versions ON COMMIT DROP AS
WITH spec AS (
    SELECT * FROM unnest(%(fiscal_year)s::int[], %(academic_year)s::text[], %(slot)s::int[],
                         %(status)s::text[], %(name)s::text[], %(is_baseline)s::boolean[],
                         %(notes)s::text[], %(created_on)s::date[])
        AS s (fiscal_year, academic_year, slot, status, name, is_baseline, notes, created_on)
), keyed AS (
    SELECT o.id AS organization_id, o.key || ':' || s.fiscal_year AS year_key,
           o.key || ':' || s.fiscal_year || ':' || s.slot AS key, o.students_base,
           o.growth, o.tariff, s.*
    FROM _demo_orgs AS o CROSS JOIN spec AS s
), created AS (
    SELECT k.*,
           (k.created_on + time '09:00') AT TIME ZONE %(tz)s
               + pg_temp.demo_unit(k.key || ':created') * interval '5 days' AS created_at
    FROM keyed AS k
), submitted AS (
    SELECT c.*,
           CASE WHEN c.status IN ('submitted', 'approved') THEN
               c.created_at + interval '25 days'
               + pg_temp.demo_unit(c.key || ':submitted') * interval '10 days'
           END AS submitted_at
    FROM created AS c
), approved AS (
    SELECT s.*,
           CASE WHEN s.status = 'approved' THEN
               s.submitted_at + interval '30 days'
               + pg_temp.demo_unit(s.key || ':approved') * interval '15 days'
           END AS approved_at
    FROM submitted AS s
), stamped AS (
    SELECT pg_temp.demo_id('budget_versions:' || a.key) AS id,
           a.organization_id, a.key, a.fiscal_year, a.academic_year, a.slot, a.status,
           a.name, a.is_baseline, a.notes, a.tariff,
           CASE WHEN a.slot > 0 THEN
               pg_temp.demo_id('budget_versions:' || a.year_key || ':' || (a.slot - 1))
           END AS parent_version_id,
           -- school size this year (growth); versions of a year differ by a few %%
           a.students_base * power(1 + a.growth, a.fiscal_year - %(base_year)s)
               * pg_temp.demo_jitter(a.key || ':students', 0.02) AS students,
           power(1 + %(price_growth)s::numeric, a.fiscal_year - %(base_year)s)
               * pg_temp.demo_jitter(a.key || ':prices', 0.01) AS price_index,
           a.created_at, a.submitted_at, a.approved_at,
           coalesce(a.approved_at, a.submitted_at,
                    a.created_at + interval '3 days'
                    + pg_temp.demo_unit(a.key || ':updated') * interval '12 days'
           ) AS updated_at
    FROM approved AS a
)
SELECT s.*, s.updated_at - s.created_at AS edit_window FROM stamped AS s
"""


def create_versions(cur: psycopg.Cursor, specs: list[VersionSpec]) -> None:
    """``_demo_versions``: one row per (school, spec), read by every insert after it."""
    cur.execute(
        _VERSIONS_SQL,
        {
            "fiscal_year": [s.fiscal_year for s in specs],
            "academic_year": [academic_year(s.fiscal_year) for s in specs],
            "slot": [s.slot for s in specs],
            "status": [s.status for s in specs],
            "name": [s.name for s in specs],
            "is_baseline": [s.is_baseline for s in specs],
            "notes": [s.notes for s in specs],
            "created_on": [s.created_on for s in specs],
            "tz": TIMEZONE,
            "base_year": BASE_FISCAL_YEAR,
            "price_growth": PRICE_GROWTH,
        },
    )
    cur.execute("ALTER TABLE _demo_versions ADD PRIMARY KEY (id)")
    cur.execute("ANALYZE _demo_versions")
