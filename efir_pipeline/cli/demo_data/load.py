"""The load: arguments checked, temporary tables prepared, one INSERT per table, one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from efir_pipeline.cli.demo_data import (
    consolidation,
    costs,
    curriculum,
    personnel,
    revenue,
    schools,
    sqlkit,
    structure,
    teaching,
    versions,
)
from efir_pipeline.cli.demo_data.errors import DemoDataError

Progress = Callable[[str, int, int], None]

# Each table's INSERT ... SELECT, in the order they derive from each other.
INSERTS: dict[str, Callable[[], sql.Composable]] = {
    "organizations": structure.insert_organizations,
    "budget_versions": structure.insert_budget_versions,
    "enrollment_plans": structure.insert_enrollment_plans,
    "class_structures": structure.insert_class_structures,
    "dhg_teacher_requirements": teaching.insert_dhg_teacher_requirements,
    "teacher_allocations": teaching.insert_teacher_allocations,
    "revenue_plans": revenue.insert_revenue_plans,
    "personnel_cost_plans": personnel.insert_personnel_cost_plans,
    "operating_cost_plans": costs.insert_operating_cost_plans,
    "capex_plans": costs.insert_capex_plans,
    "budget_consolidations": consolidation.insert_budget_consolidations,
}
TABLES: tuple[str, ...] = tuple(INSERTS)
STEPS: tuple[str, ...] = ("prepare", *TABLES, "analyze")


@dataclass(frozen=True)
class DemoSummary:
    organizations: int
    versions: int
    rows: dict[str, int]
    seconds: float


def has_data(conn: psycopg.Connection) -> bool:
    """Whether any non-deleted budget version exists (False when the schema is missing)."""
    if conn.execute("SELECT to_regclass('efir_budget.budget_versions')").fetchone()[0] is None:
        return False
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM efir_budget.budget_versions WHERE deleted_at IS NULL)"
    ).fetchone()[0]


def load_demo_data(
    conn: psycopg.Connection,
    *,
    orgs: int = 1,
    versions_per_org: int | None = None,
    seed: int = 42,
    replace: bool = False,
    progress: Progress | None = None,
) -> DemoSummary:
    """Generate ``orgs`` schools with their budget versions and plans, in one transaction.

    ``orgs=1`` is EFIR with its own 10 versions over fiscal 2024-2026 (unless
    ``versions_per_org`` says otherwise); more are network schools SCH0001... with
    ``versions_per_org`` versions each. Raises DemoDataExists when a school to generate
    already exists (by name or id) unless ``replace`` is true; then its versions and
    every child row are deleted first, in the same transaction.
    """
    specs = versions.version_specs(orgs, versions_per_org)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DemoDataError(f"seed must be an integer (got {seed!r})")
    started = time.perf_counter()
    rows: dict[str, int] = {}
    step = _stepper(progress)
    with conn.transaction(), conn.cursor() as cur:
        _prepare(cur, seed=seed, orgs=orgs, specs=specs, replace=replace)
        step("prepare")
        for table, insert in INSERTS.items():
            cur.execute(insert())
            rows[table] = cur.rowcount
            step(table)
        cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sqlkit.table, TABLES))))
        sqlkit.cleanup(cur)
        step("analyze")
    return DemoSummary(
        organizations=rows["organizations"],
        versions=rows["budget_versions"],
        rows=rows,
        seconds=round(time.perf_counter() - started, 3),
    )


def _stepper(progress: Progress | None) -> Callable[[str], None]:
    done = iter(range(1, len(STEPS) + 1))

    def step(name: str) -> None:
        index = next(done)
        if progress is not None:
            progress(name, index, len(STEPS))

    return step


def _prepare(
    cur: psycopg.Cursor, *, seed: int, orgs: int, specs: list[versions.VersionSpec], replace: bool
) -> None:
    """Session settings, seeded functions, and the temporary tables every insert reads."""
    cur.execute("SET LOCAL synchronous_commit = off")
    # Day arithmetic on timestamptz follows the session time zone (DST): fix it, so the
    # timestamps do not depend on the caller's TimeZone setting.
    cur.execute("SET LOCAL TimeZone = 'UTC'")
    cur.execute("SET LOCAL work_mem = '256MB'")
    sqlkit.cleanup(cur)
    sqlkit.create_functions(cur, seed)
    schools.create_orgs(cur, orgs=orgs)
    schools.check_existing(cur, replace=replace)
    versions.create_versions(cur, specs)
    curriculum.create_curriculum(cur)
