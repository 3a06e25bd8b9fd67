"""Every column of mv_kpi_dashboard / mv_budget_consolidation against an independent oracle.

The oracle (tests/support/kpi_oracle.py) reads the raw rows and recomputes each KPI
in Python following the documented definitions; it never runs the views' SQL. Both
the materialized view (after a refresh) and the live ``v_*`` view are compared, row
set and every column (the budget app's five former column names included), for
random data, after updates and deletions, and on small hand-checked examples.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support import kpi_oracle as oracle
from tests.support.builder import Builder, ts
from tests.support.factories import reset_data
from tests.support.random_data import Clock, generate, insert, pick_ids

D = Decimal
KPI_VIEWS = oracle.KPI_VIEWS
CONSOLIDATION_VIEWS = oracle.CONSOLIDATION_VIEWS
SEEDS = (11, 2024, 987654)


# --------------------------------------------------------------------------- helpers


def refresh(conn: psycopg.Connection, *, concurrently: bool = False) -> None:
    how = "CONCURRENTLY " if concurrently else ""
    for mv in ("mv_kpi_dashboard", "mv_budget_consolidation"):
        conn.execute(f"REFRESH MATERIALIZED VIEW {how}efir_budget.{mv}")


def assert_views_match_oracle(conn: psycopg.Connection, *, concurrently: bool = False):
    """Refresh, then compare both views (materialized and live) with the oracle."""
    refresh(conn, concurrently=concurrently)
    return oracle.assert_views_match_oracle(conn)


def kpi_row(conn: psycopg.Connection, view: str, version_id: uuid.UUID) -> dict[str, Any]:
    _, rows = oracle.read_view(conn, view)
    matching = [r for r in rows if r["budget_version_id"] == version_id]
    assert len(matching) == 1, f"{view}: {len(matching)} rows for version {version_id}"
    return matching[0]


def assert_kpis(conn: psycopg.Connection, version_id: uuid.UUID, expected: dict[str, Any]):
    """The given columns, in both KPI views, equal hand-computed values."""
    problems = []
    for view in KPI_VIEWS:
        row = kpi_row(conn, view, version_id)
        for col, want in expected.items():
            if not oracle.same(row.get(col), want):
                problems.append(f"{view} column {col}: view={row.get(col)!r} expected={want!r}")
    assert not problems, "\n".join(problems)


# Every KPI of a version without any live child row.
ZERO_KPIS: dict[str, Any] = {
    **{
        c: 0
        for c in (
            "french_students",
            "saudi_students",
            "other_students",
            "total_students",
            "total_classes",
            "total_atsem",
            "total_atsem_required",
            "total_dhg_hours",
            "total_fte_required",
            "total_rounded_fte",
            "total_hsa_hours",
            "aefe_detached_fte",
            "aefe_funded_fte",
            "local_fte",
            "total_allocated_fte",
            "fte_gap",
            "tuition_revenue_sar",
            "fees_revenue_sar",
            "other_revenue_sar",
            "total_revenue_sar",
            "teaching_salaries_sar",
            "other_personnel_sar",
            "total_personnel_costs_sar",
            "total_operating_costs_sar",
            "total_capex_sar",
            "net_budget_sar",
        )
    },
    **{
        c: None
        for c in (
            "avg_class_size",
            "budget_margin_percent",
            "personnel_cost_ratio_percent",
            "revenue_per_student_sar",
            "personnel_cost_per_student_sar",
            "hours_per_student",
            "students_per_class",
            "avg_class_size_overall",
            "students_per_teaching_hour",
            "avg_students_per_class",
        )
    },
}


# --------------------------------------------------------------------------- random data


@pytest.mark.parametrize("seed", SEEDS)
def test_random_data_matches_oracle(conn, seed):
    data = generate(conn, seed)
    _, kpi, cons = assert_views_match_oracle(conn)

    # The data really holds the cases the views used to get wrong.
    assert data.versions(deleted=True), "no soft-deleted version generated"
    assert len(kpi) == len(data.versions(deleted=False))
    rows = list(kpi.values())
    assert any(r["total_students"] == 0 for r in rows), "no zero-student version"
    assert any(r["total_students"] > 0 for r in rows)
    assert any(r["total_revenue_sar"] == 0 for r in rows), "no zero-revenue version"
    with_revenue_rows = {
        r["budget_version_id"] for r in data.rows["revenue_plans"] if r["deleted_at"] is None
    }
    assert any(
        r["total_revenue_sar"] == 0 and r["budget_version_id"] in with_revenue_rows for r in rows
    ), "no version whose live revenue rows add up to 0"
    assert any(r["budget_margin_percent"] is not None for r in rows)
    assert any(r["total_classes"] == 0 for r in rows)
    assert any(r["students_per_teaching_hour"] is None and r["total_students"] > 0 for r in rows)
    assert any(r["students_per_teaching_hour"] is not None for r in rows)
    assert cons, "no consolidation rows"
    # Soft-deleted rows next to live rows of the same version, on keys of their own
    # (the unique keys are plain: a soft-deleted row keeps its key).
    for table in (*oracle.KPI_CHILD_TABLES, "budget_consolidations"):
        rows_of = data.rows[table]
        live_versions = {r["budget_version_id"] for r in rows_of if r["deleted_at"] is None}
        assert any(
            r["deleted_at"] is not None and r["budget_version_id"] in live_versions for r in rows_of
        ), f"no deleted {table} row in a version with live ones"
    for t in oracle.KPI_CHILD_TABLES:
        assert any(r["deleted_at"] is None for r in data.rows[t]), f"no live {t} row"
    # Several live rows of one account in a version (the key includes cycle and category).
    accounts = [
        (r["budget_version_id"], r["account_code"])
        for r in data.rows["personnel_cost_plans"]
        if r["deleted_at"] is None
    ]
    assert len(set(accounts)) < len(accounts), "no account with several personnel rows"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_updates_and_deletions_then_refresh(conn, seed):
    generate(conn, seed)
    _, before, _ = assert_views_match_oracle(conn)
    rng = random.Random(seed * 7 + 1)
    at = Clock(rng, ts("2026-02-01T00:00:00"), microseconds=True)

    def pick(table: str, n: int, where: str = "deleted_at IS NULL") -> list[uuid.UUID]:
        return pick_ids(conn, rng, table, n, where)

    # The materialized view is a snapshot: writes show up only after a refresh.
    for rid in pick("revenue_plans", 6):
        conn.execute(
            "UPDATE efir_budget.revenue_plans SET amount_sar = %s, updated_at = %s WHERE id = %s",
            (D(rng.randint(0, 10**9)) / 100, at(), rid),
        )
    for rid in pick("enrollment_plans", 6):
        conn.execute(
            "UPDATE efir_budget.enrollment_plans SET student_count = %s, updated_at = %s"
            " WHERE id = %s",
            (rng.choice([0, rng.randint(1, 90)]), at(), rid),
        )
    for rid in pick("class_structures", 4):
        conn.execute(
            "UPDATE efir_budget.class_structures SET number_of_classes = %s, total_students = %s,"
            " atsem_count = %s, updated_at = %s WHERE id = %s",
            (rng.randint(1, 6), rng.randint(0, 120), rng.randint(0, 2), at(), rid),
        )
    for rid in pick("personnel_cost_plans", 4):
        # A new account, unless that would take another row's key (version, account,
        # cycle, category): then only the amount changes.
        conn.execute(
            """UPDATE efir_budget.personnel_cost_plans p
               SET total_cost_sar = total_cost_sar + 1234.56, updated_at = %(at)s,
                   account_code = CASE WHEN EXISTS (
                       SELECT FROM efir_budget.personnel_cost_plans o
                       WHERE o.budget_version_id = p.budget_version_id AND o.id <> p.id
                         AND o.account_code = %(code)s
                         AND o.cycle_id IS NOT DISTINCT FROM p.cycle_id
                         AND o.category_id IS NOT DISTINCT FROM p.category_id)
                   THEN p.account_code ELSE %(code)s END
               WHERE id = %(id)s""",
            {"code": rng.choice(["64110", "64520", "64120"]), "at": at(), "id": rid},
        )
    for rid in pick("teacher_allocations", 4):
        conn.execute(
            "UPDATE efir_budget.teacher_allocations SET fte_count = %s, updated_at = %s"
            " WHERE id = %s",
            (D(rng.randint(1, 900)) / 100, at(), rid),
        )
    for rid in pick("budget_consolidations", 4):
        conn.execute(
            "UPDATE efir_budget.budget_consolidations SET amount_sar = amount_sar * 2,"
            " account_name = account_name || ' v2', source_count = source_count + 1,"
            " updated_at = %s WHERE id = %s",
            (at(), rid),
        )
    # Status changes: a working draft is submitted, a submitted version approved.
    for vid in pick("budget_versions", 1, "deleted_at IS NULL AND status = 'working'"):
        conn.execute(
            "UPDATE efir_budget.budget_versions SET status = 'submitted', submitted_at = %s,"
            " updated_at = %s WHERE id = %s",
            (at.last, at(), vid),
        )
    for vid in pick("budget_versions", 1, "deleted_at IS NULL AND status = 'submitted'"):
        conn.execute(
            "UPDATE efir_budget.budget_versions SET status = 'approved', approved_at = %s,"
            " updated_at = %s WHERE id = %s",
            (at.last, at(), vid),
        )
    # Soft deletions: child rows and one whole version.
    for table in (
        "personnel_cost_plans",
        "enrollment_plans",
        "revenue_plans",
        "dhg_teacher_requirements",
    ):
        for rid in pick(table, 3):
            stamp = at()
            conn.execute(
                sql.SQL("UPDATE {} SET deleted_at = %s, updated_at = %s WHERE id = %s").format(
                    sql.Identifier("efir_budget", table)
                ),
                (stamp, stamp, rid),
            )
    soft_deleted_version = pick("budget_versions", 1)[0]
    stamp = at()
    conn.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = %s, updated_at = %s WHERE id = %s",
        (stamp, stamp, soft_deleted_version),
    )
    # Hard deletions: child rows, and a whole version (children first).
    for table in (
        "operating_cost_plans",
        "capex_plans",
        "class_structures",
        "budget_consolidations",
    ):
        for rid in pick(table, 3, "TRUE"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(
                    sql.Identifier("efir_budget", table)
                ),
                (rid,),
            )
    hard_deleted_version = pick(
        "budget_versions",
        1,
        "deleted_at IS NULL AND id NOT IN (SELECT parent_version_id FROM efir_budget.budget_versions"
        " WHERE parent_version_id IS NOT NULL)",
    )[0]
    for table in (*oracle.KPI_CHILD_TABLES, "budget_consolidations"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE budget_version_id = %s").format(
                sql.Identifier("efir_budget", table)
            ),
            (hard_deleted_version,),
        )
    conn.execute("DELETE FROM efir_budget.budget_versions WHERE id = %s", (hard_deleted_version,))

    # Before the refresh the materialized view still shows the old snapshot.
    _, stale = oracle.read_view(conn, "mv_kpi_dashboard")
    assert {r["budget_version_id"] for r in stale} == set(before)

    # After it (CONCURRENTLY: the unique index must allow it) both views equal the oracle.
    _, after, _ = assert_views_match_oracle(conn, concurrently=True)
    assert soft_deleted_version not in after
    assert hard_deleted_version not in after
    assert after != {k: v for k, v in before.items() if k in after}, "mutations changed nothing"


# --------------------------------------------------------------------------- hand examples


def test_hand_example_no_fan_out(conn):
    """2 enrollment x 2 class x 2 DHG x 3 allocation x 3 revenue x 3 personnel rows:
    each figure is its own table's sum, not multiplied by the others."""
    b = Builder(conn)
    v = b.version("Budget 2026", status="approved", is_baseline=True, fiscal_year=2026)
    b.enrollment(v, "CP", "FRENCH", 10)
    b.enrollment(v, "CP", "SAUDI", 20)
    b.enrollment(v, "CE1", "SAUDI", 99, deleted_at=ts("2025-03-02T00:00:00"))  # deleted
    b.classes(v, "CP", 30, 2)  # 15 per class
    b.classes(v, "GS", 10, 1, requires_atsem=True, atsem_count=1)  # 10 per class
    b.dhg(v, "FRAN", "27.00", simple_fte=D("1.50"), rounded_fte=2, hsa_hours=D("1.50"))
    b.dhg(v, "MATH", "18.00", simple_fte=D("1.00"), rounded_fte=1)
    b.allocation(v, "LOCAL", "1.50")
    b.allocation(v, "AEFE_DETACHED", "2.00")
    b.allocation(v, "AEFE_DETACHED", "0.25", cycle="LYC")
    b.revenue(v, "70110", "300000.00")
    b.revenue(v, "70120", "999999.99", deleted_at=ts("2025-03-02T00:00:00"))  # deleted
    b.revenue(v, "70210", "30000.00")
    b.revenue(v, "75800", "3000.00")
    b.personnel(v, "64110", "100000.00", cycle_id=b.ref.cycles["COLL"])
    b.personnel(v, "64110", "50000.00", cycle_id=b.ref.cycles["LYC"])
    b.personnel(v, "64510", "20000.00")
    latest = ts("2025-06-30T12:00:00.123456")
    b.personnel(  # deleted, latest
        v, "64110", "777777.00", cycle_id=b.ref.cycles["ELEM"], updated_at=latest, deleted_at=latest
    )
    b.operating(v, "60610", "10000.00")
    b.capex(v, "21830", "3000.00", quantity=3, unit_cost_sar=D("1000.00"))
    refresh(conn)

    assert_kpis(
        conn,
        v,
        {
            "budget_version_id": v,
            "organization_id": b.org,
            "version_name": "Budget 2026",
            "fiscal_year": 2026,
            "academic_year": "2025-2026",
            "status": "approved",
            "is_baseline": True,
            "french_students": 10,
            "saudi_students": 20,
            "other_students": 0,
            "total_students": 30,
            "total_classes": 3,
            "avg_class_size": D("13.33"),  # 40 / 3, not (15 + 10) / 2
            "total_atsem": 1,
            "total_dhg_hours": D("45.00"),
            "total_fte_required": D("2.50"),
            "total_rounded_fte": 3,
            "total_hsa_hours": D("1.50"),
            "aefe_detached_fte": D("2.25"),
            "aefe_funded_fte": D("0"),
            "local_fte": D("1.50"),
            "total_allocated_fte": D("3.75"),
            "fte_gap": D("1.25"),
            "tuition_revenue_sar": D("300000.00"),
            "fees_revenue_sar": D("30000.00"),
            "other_revenue_sar": D("3000.00"),
            "total_revenue_sar": D("333000.00"),
            "teaching_salaries_sar": D("150000.00"),
            "other_personnel_sar": D("20000.00"),
            "total_personnel_costs_sar": D("170000.00"),
            "total_operating_costs_sar": D("10000.00"),
            "total_capex_sar": D("3000.00"),
            "net_budget_sar": D("150000.00"),
            "budget_margin_percent": D("45.05"),  # 150000 / 333000 = 45.045...%
            "personnel_cost_ratio_percent": D("51.05"),  # 170000 / 333000 = 51.051...%
            "revenue_per_student_sar": D("11100.00"),
            "personnel_cost_per_student_sar": D("5666.67"),
            "hours_per_student": D("1.5000"),
            "students_per_class": D("10.00"),  # 30 enrolled / 3 classes
            "source_updated_at": latest,  # the deleted personnel row: a deletion is a change
            # The budget app's former names.
            "last_updated": latest,
            "avg_class_size_overall": D("13.33"),
            "total_atsem_required": 1,
            "students_per_teaching_hour": D("0.6667"),  # 30 / 45
            "avg_students_per_class": D("10.00"),
        },
    )
    # The oracle agrees with the hand computation too.
    assert_views_match_oracle(conn)


def test_rounding_is_half_away_from_zero(conn):
    b = Builder(conn)
    v = b.version("Rounding")
    b.enrollment(v, "CP", "FRENCH", 8)
    b.classes(v, "CP", 1, 8)  # 1 / 8 = 0.125
    b.revenue(v, "70110", "800.00")
    b.personnel(v, "64120", "801.00")  # 801 / 8 = 100.125; net = -1 -> -0.125 %
    b.dhg(v, "FRAN", "0.01")
    w = b.version("Rounding 4 decimals")
    b.enrollment(w, "CP", "OTHER", 200)
    b.dhg(w, "FRAN", "0.01")  # 0.01 / 200 = 0.00005
    x = b.version("Students per hour")
    b.enrollment(x, "CP", "SAUDI", 1)
    b.dhg(x, "MATH", "32.00")  # 1 / 32 = 0.03125
    refresh(conn)
    assert_kpis(
        conn,
        v,
        {
            "avg_class_size": D("0.13"),
            "students_per_class": D("1.00"),
            "net_budget_sar": D("-1.00"),
            "budget_margin_percent": D("-0.13"),
            "personnel_cost_ratio_percent": D("100.13"),
            "revenue_per_student_sar": D("100.00"),
            "personnel_cost_per_student_sar": D("100.13"),
            "hours_per_student": D("0.0013"),  # 0.00125
            "teaching_salaries_sar": D("0"),
            "other_personnel_sar": D("801.00"),
            "avg_class_size_overall": D("0.13"),
            "avg_students_per_class": D("1.00"),
            "students_per_teaching_hour": D("800.0000"),  # 8 / 0.01
        },
    )
    assert_kpis(
        conn,
        w,
        {
            "hours_per_student": D("0.0001"),
            "other_students": 200,
            "students_per_teaching_hour": D("20000.0000"),
        },
    )
    assert_kpis(
        conn, x, {"students_per_teaching_hour": D("0.0313"), "hours_per_student": D("32.0000")}
    )
    assert_views_match_oracle(conn)


def test_empty_versions_give_zeros_and_null_ratios(conn):
    b = Builder(conn)
    stamp = ts("2025-05-05T05:05:05.555555")
    empty = b.version("Empty", updated_at=stamp)
    only_deleted = b.version("Only deleted rows", updated_at=ts("2025-01-01T00:00:00"))
    gone = ts("2025-07-07T07:07:07.777777")
    b.enrollment(only_deleted, "CP", "FRENCH", 25, updated_at=gone, deleted_at=gone)
    b.revenue(only_deleted, "70110", "1000.00", deleted_at=gone)
    b.classes(only_deleted, "CP", 25, 1, deleted_at=gone)
    refresh(conn)

    assert_kpis(
        conn,
        empty,
        {**ZERO_KPIS, "source_updated_at": stamp, "last_updated": stamp, "version_name": "Empty"},
    )
    assert_kpis(conn, only_deleted, {**ZERO_KPIS, "source_updated_at": gone, "last_updated": gone})
    assert_views_match_oracle(conn)


def test_zero_students_and_zero_revenue(conn):
    b = Builder(conn)
    no_students = b.version("No students")
    b.enrollment(no_students, "CP", "FRENCH", 0)
    b.classes(no_students, "CP", 30, 2)  # classes planned, nobody enrolled
    b.dhg(no_students, "FRAN", "10.00")
    b.revenue(no_students, "70110", "1000.00")
    b.personnel(no_students, "64110", "250.00")
    no_revenue = b.version("Revenue rows of 0")
    b.enrollment(no_revenue, "CP", "SAUDI", 4)
    b.revenue(no_revenue, "70110", "0.00")
    b.revenue(no_revenue, "70900", "0.00")
    b.personnel(no_revenue, "64110", "100.00")
    b.dhg(no_revenue, "MATH", "0.00")  # DHG rows, but 0 hours
    refresh(conn)

    assert_kpis(
        conn,
        no_students,
        {
            "total_students": 0,
            "total_classes": 2,
            "avg_class_size": D("15.00"),
            "students_per_class": D("0.00"),
            "avg_students_per_class": D("0.00"),
            "revenue_per_student_sar": None,
            "personnel_cost_per_student_sar": None,
            "hours_per_student": None,
            "students_per_teaching_hour": D("0.0000"),
            "budget_margin_percent": D("75.00"),
            "personnel_cost_ratio_percent": D("25.00"),
        },
    )
    assert_kpis(
        conn,
        no_revenue,
        {
            "tuition_revenue_sar": D("0.00"),
            "other_revenue_sar": D("0.00"),
            "total_revenue_sar": D("0.00"),
            "net_budget_sar": D("-100.00"),
            "budget_margin_percent": None,
            "personnel_cost_ratio_percent": None,
            "revenue_per_student_sar": D("0.00"),
            "personnel_cost_per_student_sar": D("25.00"),
            "avg_class_size": None,
            "students_per_class": None,
            "total_dhg_hours": D("0.00"),
            "hours_per_student": D("0.0000"),
            "students_per_teaching_hour": None,  # 4 students, 0 DHG hours
        },
    )
    assert_views_match_oracle(conn)


def test_revenue_and_personnel_prefixes(conn):
    b = Builder(conn)
    v = b.version("Prefixes")
    for code, amount in (
        ("70110", "1.00"),
        ("7011", "2.00"),
        ("70210", "10.00"),
        ("70310", "20.00"),
        ("7031", "40.00"),
        ("70610", "100.00"),
        ("7070", "200.00"),
        ("75800", "400.00"),
        ("7", "800.00"),
    ):
        b.revenue(v, code, amount)
    for code, amount in (
        ("64110", "1.00"),
        ("6411", "2.00"),
        ("64119", "4.00"),
        ("64120", "10.00"),
        ("64130", "20.00"),
        ("64510", "40.00"),
        ("641", "80.00"),
    ):
        b.personnel(v, code, amount)
    refresh(conn)
    assert_kpis(
        conn,
        v,
        {
            "tuition_revenue_sar": D("3.00"),
            "fees_revenue_sar": D("70.00"),
            "other_revenue_sar": D("1500.00"),
            "total_revenue_sar": D("1573.00"),
            "teaching_salaries_sar": D("7.00"),
            "other_personnel_sar": D("150.00"),
            "total_personnel_costs_sar": D("157.00"),
        },
    )
    assert_views_match_oracle(conn)


def test_nationality_codes_match(conn):
    """With every reference row live, FRENCH + SAUDI + OTHER make up the total."""
    generate(conn, SEEDS[0])
    assert_views_match_oracle(conn)
    for view in KPI_VIEWS:
        _, rows = oracle.read_view(conn, view)
        assert rows
        for r in rows:
            parts = r["french_students"] + r["saudi_students"] + r["other_students"]
            assert parts == r["total_students"], (
                f"{view} version {r['version_name']!r}: french+saudi+other={parts}"
                f" != total_students={r['total_students']}"
            )
            fte = r["aefe_detached_fte"] + r["aefe_funded_fte"] + r["local_fte"]
            assert fte == r["total_allocated_fte"], (
                f"{view} version {r['version_name']!r}: fte by category {fte}"
                f" != total_allocated_fte={r['total_allocated_fte']}"
            )
        assert any(
            r["french_students"] > 0 and r["saudi_students"] > 0 and r["other_students"] > 0
            for r in rows
        ), f"{view}: no version with students of all three nationalities"
        assert any(
            r["aefe_detached_fte"] > 0 and r["aefe_funded_fte"] > 0 and r["local_fte"] > 0
            for r in rows
        ), f"{view}: no version with FTE in all three categories"


def test_reference_codes_the_view_does_not_know(conn):
    """A nationality / teacher category whose code the view does not name (the app
    renamed it): its rows still count in the totals, not in any per-code column."""
    b = Builder(conn)
    v = b.version("Reference renamed")
    b.enrollment(v, "CP", "FRENCH", 10)
    b.enrollment(v, "CP", "OTHER", 7)
    b.allocation(v, "LOCAL", "2.00")
    b.allocation(v, "AEFE_FUNDED", "1.00")
    try:
        conn.execute(
            "UPDATE efir_budget.nationality_types SET code = 'OTHER_X' WHERE code = 'OTHER'"
        )
        conn.execute(
            "UPDATE efir_budget.teacher_categories SET code = 'LOCAL_X' WHERE code = 'LOCAL'"
        )
        refresh(conn)
        assert_kpis(
            conn,
            v,
            {
                "french_students": 10,
                "other_students": 0,
                "total_students": 17,
                "local_fte": D("0"),
                "aefe_funded_fte": D("1.00"),
                "total_allocated_fte": D("3.00"),
            },
        )
        assert_views_match_oracle(conn)
    finally:
        conn.execute(
            "UPDATE efir_budget.nationality_types SET code = 'OTHER' WHERE code = 'OTHER_X'"
        )
        conn.execute(
            "UPDATE efir_budget.teacher_categories SET code = 'LOCAL' WHERE code = 'LOCAL_X'"
        )


def test_consolidation_by_hand(conn):
    b = Builder(conn)
    v = b.version("Consolidated", fiscal_year=2026, status="submitted")
    dropped = b.version("Deleted version", deleted_at=ts("2025-04-01T00:00:00"))
    t1 = ts("2025-03-10T10:00:00.000001")
    b.consolidation(
        v, "70110", "Scolarite", "revenue_tuition", True, "1000.50", updated_at=t1, source_count=3
    )
    b.consolidation(
        v,
        "64110",
        "Salaires",
        "personnel_teaching",
        False,
        "-20.25",
        updated_at=ts("2025-03-11T00:00:00"),
        source_count=0,
    )
    # Only a deleted row: no output row for this account.
    b.consolidation(
        v,
        "60610",
        "Fournitures",
        "operating_supplies",
        False,
        "7.00",
        deleted_at=ts("2025-03-12T00:00:00"),
    )
    b.consolidation(dropped, "70110", "Scolarite", "revenue_tuition", True, "9.00")
    refresh(conn)

    for view in CONSOLIDATION_VIEWS:
        _, rows = oracle.read_view(conn, view)
        by_key = {(r["budget_version_id"], r["account_code"]): r for r in rows}
        assert set(by_key) == {(v, "70110"), (v, "64110")}, f"{view}: {sorted(by_key, key=str)}"
        row = by_key[(v, "70110")]
        expected = {
            "organization_id": b.org,
            "fiscal_year": 2026,
            "status": "submitted",
            "account_name": "Scolarite",
            "consolidation_category": "revenue_tuition",
            "is_revenue": True,
            "total_amount_sar": D("1000.50"),
            "line_item_count": 1,
            "source_count": 3,
            "last_updated": t1,
        }
        for col, want in expected.items():
            assert oracle.same(row[col], want), f"{view} 70110 {col}: {row[col]!r} != {want!r}"
        assert by_key[(v, "64110")]["total_amount_sar"] == D("-20.25")
        assert by_key[(v, "64110")]["source_count"] == 0
    assert_views_match_oracle(conn)


def test_source_updated_at_counts_deleted_rows_of_every_table(conn):
    """For each child table, a version whose latest change is a soft-deleted row of it."""
    b = Builder(conn)
    # (live row, soft-deleted row): a soft-deleted row keeps its key, so its own key.
    coll, lyc = b.ref.cycles["COLL"], b.ref.cycles["LYC"]
    add = {
        "enrollment_plans": (
            lambda v, **kw: b.enrollment(v, "CP", "FRENCH", 3, **kw),
            lambda v, **kw: b.enrollment(v, "CE1", "SAUDI", 3, **kw),
        ),
        "class_structures": (
            lambda v, **kw: b.classes(v, "CP", 3, 1, **kw),
            lambda v, **kw: b.classes(v, "CE1", 3, 1, **kw),
        ),
        "dhg_teacher_requirements": (
            lambda v, **kw: b.dhg(v, "FRAN", "3.00", **kw),
            lambda v, **kw: b.dhg(v, "MATH", "3.00", **kw),
        ),
        "teacher_allocations": (
            lambda v, **kw: b.allocation(v, "LOCAL", "1.00", **kw),
            lambda v, **kw: b.allocation(v, "LOCAL", "1.00", cycle="LYC", **kw),
        ),
        "revenue_plans": (
            lambda v, **kw: b.revenue(v, "70110", "3.00", **kw),
            lambda v, **kw: b.revenue(v, "70120", "3.00", **kw),
        ),
        "personnel_cost_plans": (
            lambda v, **kw: b.personnel(v, "64110", "3.00", cycle_id=coll, **kw),
            lambda v, **kw: b.personnel(v, "64110", "3.00", cycle_id=lyc, **kw),
        ),
        "operating_cost_plans": (
            lambda v, **kw: b.operating(v, "60610", "3.00", **kw),
            lambda v, **kw: b.operating(v, "60620", "3.00", **kw),
        ),
        "capex_plans": (
            lambda v, **kw: b.capex(v, "21830", "3.00", **kw),
            lambda v, **kw: b.capex(v, "21830", "3.00", description="other item", **kw),
        ),
    }
    assert set(add) == set(oracle.KPI_CHILD_TABLES)
    expected = {}
    for i, table in enumerate(oracle.KPI_CHILD_TABLES):
        v = b.version(f"Latest change in {table}")
        for other in oracle.KPI_CHILD_TABLES:  # a live row everywhere, older
            add[other][0](v)
        gone = ts("2025-09-01T00:00:00") + timedelta(days=i, microseconds=i + 1)
        # A soft-deleted row (a key of its own) changed last.
        add[table][1](v, updated_at=gone, deleted_at=gone)
        expected[v] = (table, gone)
    refresh(conn)
    for v, (table, gone) in expected.items():
        for view in KPI_VIEWS:
            row = kpi_row(conn, view, v)
            for column in ("source_updated_at", "last_updated"):
                got = row[column]
                assert got == gone, (
                    f"{view}.{column}: deleted {table} row changed last at {gone}, got {got}"
                )
    assert_views_match_oracle(conn)


def test_consolidation_rows_sharing_a_key(make_database):
    """The documented rule: "if several rows share the key, the latest updated one". The
    unique key (version, account) normally prevents it; a private database without it
    (as when the app bypasses it) shows the rule: labels from the latest live row, sums
    over all."""
    with psycopg.connect(make_database(), autocommit=True) as c:
        (constraint,) = c.execute(
            """SELECT conname FROM pg_constraint
               WHERE conrelid = 'efir_budget.budget_consolidations'::regclass
                 AND contype = 'u'"""
        ).fetchone()
        c.execute(
            sql.SQL("ALTER TABLE efir_budget.budget_consolidations DROP CONSTRAINT {}").format(
                sql.Identifier(constraint)
            )
        )
        b = Builder(c)
        v = b.version("Duplicated accounts")
        t = [ts("2025-04-01T00:00:00") + timedelta(hours=h, microseconds=h) for h in range(5)]
        b.consolidation(
            v, "70110", "First", "revenue_tuition", True, "100.00", updated_at=t[0], source_count=2
        )
        b.consolidation(
            v, "70110", "Latest", "revenue_fees", False, "50.25", updated_at=t[3], source_count=5
        )
        b.consolidation(
            v, "70110", "Middle", "revenue_other", True, "25.00", updated_at=t[1], source_count=0
        )
        b.consolidation(
            v, "70110", "Deleted", "capex_it", True, "1000.00", updated_at=t[4], deleted_at=t[4]
        )
        refresh(c)
        for view in CONSOLIDATION_VIEWS:
            _, rows = oracle.read_view(c, view)
            assert len(rows) == 1, f"{view}: {rows}"
            want = {
                "account_name": "Latest",
                "consolidation_category": "revenue_fees",
                "is_revenue": False,
                "total_amount_sar": D("175.25"),
                "line_item_count": 3,
                "source_count": 7,
                "last_updated": t[3],
            }
            for col, value in want.items():
                assert oracle.same(rows[0][col], value), f"{view} {col}: {rows[0][col]!r}"

        # Random data plus live duplicates of random keys, with distinct timestamps.
        reset_data(c)
        generate(c, SEEDS[1])
        rng = random.Random(5)
        live = c.execute(
            "SELECT budget_version_id, account_code FROM efir_budget.budget_consolidations"
            " WHERE deleted_at IS NULL ORDER BY id"
        ).fetchall()
        extra = []
        for i, (vid, code) in enumerate(rng.sample(live, 25)):
            stamp = ts("2025-01-01T00:00:00") + timedelta(
                seconds=rng.randrange(400 * 86400), microseconds=i
            )
            is_revenue = rng.random() < 0.5
            low = 0 if is_revenue else -(10**6)  # a revenue amount is never negative
            extra.append(
                {
                    "id": uuid.uuid4(),
                    "created_at": stamp,
                    "updated_at": stamp,
                    "deleted_at": None,
                    "budget_version_id": vid,
                    "account_code": code,
                    "account_name": f"Duplicate {i}",
                    "consolidation_category": rng.choice(["capex_it", "operating_other"]),
                    "is_revenue": is_revenue,
                    "amount_sar": D(rng.randint(low, 10**8)) / 100,
                    "source_table": "manual",
                    "source_count": rng.randint(0, 9),
                    "is_calculated": False,
                    "notes": None,
                }
            )
        insert(c, "budget_consolidations", extra)
        _, _, cons = assert_views_match_oracle(c)
        assert any(r["line_item_count"] > 1 for r in cons.values())
