"""Every column of the roadmap views against an independent oracle (docs/views.md).

mv_enrollment_trends, mv_financial_ratios and mv_workforce_utilization, materialized
(refreshed in the catalog's dependency order: mv_kpi_dashboard before
mv_financial_ratios) and live (``v_*``), are compared row set and every column with
tests/support/roadmap_oracle.py, which recomputes them in Python from the raw rows
(and, for the financial ratios, from the independent KPI oracle). Random data from the
shared generator (several seeds, plus competing approved versions), hand-computed
examples, and the edge cases: empty database, zero denominators, a year without an
approved version, several approved versions in one year, a missing previous year,
reference codes the views do not name.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from efir_pipeline.core import catalog
from tests.support import kpi_oracle as kpi
from tests.support import roadmap_oracle as oracle
from tests.support.builder import Builder, ts
from tests.support.random_data import Clock, Dataset, Reference, generate, insert, pick_ids

D = Decimal
SEEDS = (11, 2024, 987654)

# name -> (oracle function, unique key, columns in view order)
ROADMAP = {
    "enrollment_trends": (
        oracle.enrollment_trends,
        oracle.ENROLLMENT_TRENDS_KEY,
        oracle.ENROLLMENT_TRENDS_COLUMNS,
    ),
    "financial_ratios": (
        oracle.financial_ratios,
        oracle.FINANCIAL_RATIOS_KEY,
        oracle.FINANCIAL_RATIOS_COLUMNS,
    ),
    "workforce_utilization": (
        oracle.workforce_utilization,
        oracle.WORKFORCE_UTILIZATION_KEY,
        oracle.WORKFORCE_UTILIZATION_COLUMNS,
    ),
}


# --------------------------------------------------------------------------- helpers


def refresh(conn: psycopg.Connection, *, concurrently: bool = False) -> list[str]:
    """Refresh every managed view in the catalog's order (dependencies first)."""
    how = "CONCURRENTLY " if concurrently else ""
    order = [v.name for v in catalog.resolve_views()]
    for name in order:
        conn.execute(f"REFRESH MATERIALIZED VIEW {how}efir_budget.{name}")
    return order


def assert_views_match_oracle(
    conn: psycopg.Connection, *, concurrently: bool = False
) -> dict[str, dict[Any, dict[str, Any]]]:
    """Refresh in dependency order, then compare mv_* and v_* of the three views."""
    order = refresh(conn, concurrently=concurrently)
    assert order.index("mv_kpi_dashboard") < order.index("mv_financial_ratios")
    raw = oracle.load_raw(conn)
    names = {v["id"]: repr(v["name"]) for v in raw["budget_versions"]}
    problems: list[str] = []
    expected_by_view: dict[str, dict[Any, dict[str, Any]]] = {}
    for name, (compute, key, columns) in ROADMAP.items():
        expected = compute(raw)
        expected_by_view[name] = expected
        describe = {k: names[k[0] if isinstance(k, tuple) else k] for k in expected}
        for view in (f"mv_{name}", f"v_{name}"):
            got_columns, rows = kpi.read_view(conn, view)
            if got_columns != list(columns):
                problems.append(f"{view}: columns {got_columns} != documented {list(columns)}")
            problems += kpi.diff_rows(view, rows, expected, key, describe)
    assert not problems, f"{len(problems)} differences from the oracle:\n" + "\n".join(
        problems[:60]
    )
    return expected_by_view


def rows_of(conn: psycopg.Connection, view: str) -> list[dict[str, Any]]:
    return kpi.read_view(conn, view)[1]


def assert_row(conn, name: str, key: dict[str, Any], expected: dict[str, Any]) -> None:
    """In mv_<name> and v_<name>, the one row matching ``key`` has the expected values."""
    problems = []
    for view in (f"mv_{name}", f"v_{name}"):
        matching = [
            r for r in rows_of(conn, view) if all(r[c] == value for c, value in key.items())
        ]
        assert len(matching) == 1, f"{view}: {len(matching)} rows for {key}"
        for col, want in expected.items():
            got = matching[0][col]
            if not kpi.same(got, want):
                problems.append(f"{view} {key} column {col}: view={got!r} expected={want!r}")
    assert not problems, "\n".join(problems)


class Hand(Builder):
    """The KPI tests' builder, plus the shapes the roadmap views need."""

    def approved(self, name: str, fy: int, approved_at, org=None, **cols) -> uuid.UUID:
        return self.add(
            "budget_versions",
            organization_id=org or self.org,
            name=name,
            fiscal_year=fy,
            academic_year=f"{fy - 1}-{fy}",
            status="approved",
            approved_at=approved_at,
            **cols,
        )

    def allocate(self, vid, subject, category, fte, cycle="COLL", **kw) -> uuid.UUID:
        return self.add(
            "teacher_allocations",
            budget_version_id=vid,
            subject_id=self.ref.subjects[subject],
            cycle_id=self.ref.cycles[cycle],
            category_id=self.ref.categories[category],
            fte_count=D(fte),
            **kw,
        )

    def cost(self, vid, cycle, amount, code="64110", **kw) -> uuid.UUID:
        cycle_id = self.ref.cycles[cycle] if cycle else None
        return self.personnel(vid, code, amount, cycle_id=cycle_id, **kw)


# --------------------------------------------------------------------------- random data


def add_approval_cases(conn: psycopg.Connection, data: Dataset, seed: int) -> None:
    """Competing approved versions on top of the generator's data.

    For every organization and fiscal years 2024 (before the generated years), 2025,
    2026 and 2028 (after a gap), 0-3 more approved versions, some soft-deleted, with
    approved_at / updated_at drawn from a few shared stamps (so ties on approved_at,
    then on updated_at too, happen and the id decides) or approved_at NULL; each with
    random enrollment rows, some soft-deleted (on keys of their own: a soft-deleted row
    keeps its unique key).
    """
    rng = random.Random(seed * 31 + 7)
    ref = Reference.load(conn)
    pairs = [(lv, nat) for lv in sorted(ref.levels) for nat in sorted(ref.nationalities)]
    approved_stamps = [datetime(2024, 6, d, tzinfo=UTC) for d in (1, 2, 3)] + [None]
    updated_stamps = [datetime(2025, 2, d, tzinfo=UTC) for d in (1, 2)]
    versions, enrollment = [], []

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    for org in data.rows["organizations"]:
        for fy in (2024, 2025, 2026, 2028):
            for i in range(rng.choice([0, 1, 2, 2, 3])):
                updated = rng.choice(updated_stamps)
                deleted = rng.random() < 0.2
                vid = uid()
                versions.append(
                    {
                        "id": vid,
                        "created_at": updated - timedelta(days=30),
                        "updated_at": updated,
                        "deleted_at": updated if deleted else None,
                        "organization_id": org["id"],
                        "name": f"Extra approved {fy} #{i}{' (deleted)' if deleted else ''}",
                        "fiscal_year": fy,
                        "academic_year": f"{fy - 1}-{fy}",
                        "status": "approved",
                        "submitted_at": None,
                        "approved_at": rng.choice(approved_stamps),
                        "notes": None,
                        "is_baseline": False,
                        "parent_version_id": None,
                    }
                )
                for lv, nat in rng.sample(pairs, rng.randint(0, 25)):
                    row_deleted = rng.random() < 0.2
                    stamp = updated - timedelta(seconds=rng.randint(1, 10**6))
                    enrollment.append(
                        {
                            "id": uid(),
                            "created_at": stamp,
                            "updated_at": stamp,
                            "deleted_at": stamp if row_deleted else None,
                            "budget_version_id": vid,
                            "level_id": ref.levels[lv][0],
                            "nationality_type_id": ref.nationalities[nat],
                            "student_count": rng.choice([0, rng.randint(1, 80)]),
                        }
                    )
    insert(conn, "budget_versions", versions)
    insert(conn, "enrollment_plans", enrollment)


def assert_consistent_with_the_kpi_view(conn: psycopg.Connection) -> None:
    """Cross-view invariants (with every reference code one the views name)."""
    dashboard = {r["budget_version_id"]: r for r in rows_of(conn, "mv_kpi_dashboard")}

    # Summed over subjects, workforce utilization is the dashboard's DHG and FTE figures.
    sums: dict[uuid.UUID, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    pairs = (
        ("total_hours_per_week", "total_dhg_hours"),
        ("simple_fte", "total_fte_required"),
        ("rounded_fte", "total_rounded_fte"),
        ("hsa_hours", "total_hsa_hours"),
        ("aefe_detached_fte", "aefe_detached_fte"),
        ("aefe_funded_fte", "aefe_funded_fte"),
        ("local_fte", "local_fte"),
        ("total_allocated_fte", "total_allocated_fte"),
        ("fte_gap", "fte_gap"),
    )
    for r in rows_of(conn, "mv_workforce_utilization"):
        for mine, theirs in pairs:
            sums[r["budget_version_id"]][theirs] += r[mine]
    for vid, k in dashboard.items():
        for _, theirs in pairs:
            assert sums[vid][theirs] == k[theirs], (vid, theirs)

    # The four cycles plus the unallocated part make up the personnel costs.
    ratios = rows_of(conn, "mv_financial_ratios")
    assert {r["budget_version_id"] for r in ratios} == set(dashboard)
    for r in ratios:
        parts = sum(r[f"{c.lower()}_personnel_cost_sar"] for c in oracle.CYCLES)
        assert parts + r["unallocated_personnel_cost_sar"] == r["total_personnel_costs_sar"]
        assert sum(r[f"{c.lower()}_students"] for c in oracle.CYCLES) == r["total_students"]

    # An approved version's 45 rows hold all its students.
    students: dict[uuid.UUID, int] = defaultdict(int)
    for r in rows_of(conn, "mv_enrollment_trends"):
        students[r["budget_version_id"]] += r["student_count"]
    for vid, total in students.items():
        assert total == dashboard[vid]["total_students"]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_data_matches_oracle(conn, seed):
    data = generate(conn, seed)
    add_approval_cases(conn, data, seed)
    expected = assert_views_match_oracle(conn)
    assert_consistent_with_the_kpi_view(conn)

    # The data holds the cases that matter.
    raw = oracle.load_raw(conn)
    competing = defaultdict(int)
    for v in kpi.live(raw["budget_versions"]):
        if v["status"] == "approved":
            competing[(v["organization_id"], v["fiscal_year"])] += 1
    assert max(competing.values()) >= 2, "no year with several approved versions"
    trends = list(expected["enrollment_trends"].values())
    assert any(r["previous_budget_version_id"] is None for r in trends)
    assert any(r["yoy_change_percent"] is not None and r["yoy_change"] != 0 for r in trends)
    assert any(r["previous_student_count"] == 0 for r in trends)  # zero base: NULL percent
    ratios = list(expected["financial_ratios"].values())
    assert any(r["tuition_share_percent"] is None for r in ratios)
    assert any(r["unallocated_personnel_cost_sar"] != 0 for r in ratios)
    assert any(r["lyc_personnel_cost_per_student_sar"] is not None for r in ratios)
    workforce = list(expected["workforce_utilization"].values())
    assert any(r["total_allocated_fte"] == 0 for r in workforce), "no DHG-only subject"
    assert any(r["total_hours_per_week"] == 0 and r["total_allocated_fte"] > 0 for r in workforce)
    assert any(r["utilization_percent"] is not None for r in workforce)


def test_updates_and_deletions_then_concurrent_refresh(conn):
    seed = SEEDS[1]
    data = generate(conn, seed)
    add_approval_cases(conn, data, seed)
    before = assert_views_match_oracle(conn)
    rng = random.Random(99)
    at = Clock(rng, ts("2026-03-01T00:00:00"))

    def pick(table: str, n: int, where: str = "deleted_at IS NULL") -> list[uuid.UUID]:
        return pick_ids(conn, rng, table, n, where)

    # The approved version of a year changes: a later approval wins, a winner is deleted.
    for vid in pick("budget_versions", 2, "deleted_at IS NULL AND status = 'submitted'"):
        conn.execute(
            "UPDATE efir_budget.budget_versions SET status = 'approved', approved_at = %s,"
            " updated_at = %s WHERE id = %s",
            (at.last, at(), vid),
        )
    winners = sorted(
        {r["budget_version_id"] for r in before["enrollment_trends"].values()}, key=str
    )
    gone = rng.choice(winners)
    stamp = at()
    conn.execute(
        "UPDATE efir_budget.budget_versions SET deleted_at = %s, updated_at = %s WHERE id = %s",
        (stamp, stamp, gone),
    )
    for rid in pick("enrollment_plans", 20):
        conn.execute(
            "UPDATE efir_budget.enrollment_plans SET student_count = %s, updated_at = %s"
            " WHERE id = %s",
            (rng.choice([0, rng.randint(1, 90)]), at(), rid),
        )
    for rid in pick("personnel_cost_plans", 8):
        # Another cycle, unless that would take another row's key (version, account,
        # cycle, category): then only updated_at changes.
        conn.execute(
            """UPDATE efir_budget.personnel_cost_plans p SET updated_at = %(at)s,
                   cycle_id = CASE WHEN EXISTS (
                       SELECT FROM efir_budget.personnel_cost_plans o
                       WHERE o.budget_version_id = p.budget_version_id AND o.id <> p.id
                         AND o.account_code = p.account_code
                         AND o.category_id IS NOT DISTINCT FROM p.category_id
                         AND o.cycle_id IS NOT DISTINCT FROM c.id)
                   THEN p.cycle_id ELSE c.id END
               FROM (SELECT (SELECT id FROM efir_budget.academic_cycles WHERE code = %(code)s)
                     AS id) c
               WHERE p.id = %(id)s""",
            {"code": rng.choice(["MAT", "LYC", None]), "at": at(), "id": rid},
        )
    for table in ("teacher_allocations", "dhg_teacher_requirements", "revenue_plans"):
        for rid in pick(table, 5):
            stamp = at()
            conn.execute(
                sql.SQL("UPDATE {} SET deleted_at = %s, updated_at = %s WHERE id = %s").format(
                    sql.Identifier("efir_budget", table)
                ),
                (stamp, stamp, rid),
            )

    # Not refreshed yet: the materialized views still show the old snapshot.
    stale = {r["budget_version_id"] for r in rows_of(conn, "mv_enrollment_trends")}
    assert gone in stale

    after = assert_views_match_oracle(conn, concurrently=True)
    assert gone not in {r["budget_version_id"] for r in after["enrollment_trends"].values()}
    assert gone not in after["financial_ratios"]
    assert after != before, "mutations changed nothing"


def test_financial_ratios_follow_the_materialized_dashboard(conn):
    """The view reads mv_kpi_dashboard: refreshing it alone keeps the dashboard's old
    totals; refreshing in dependency order brings the new ones."""
    b = Hand(conn)
    v = b.version("Budget")
    rev = b.revenue(v, "70110", "1000.00")
    refresh(conn)
    conn.execute("UPDATE efir_budget.revenue_plans SET amount_sar = 4000 WHERE id = %s", (rev,))
    conn.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_financial_ratios")
    assert rows_of(conn, "mv_financial_ratios")[0]["total_revenue_sar"] == D("1000.00")
    refresh(conn)
    assert rows_of(conn, "mv_financial_ratios")[0]["total_revenue_sar"] == D("4000.00")
    assert_views_match_oracle(conn)


# --------------------------------------------------------------------------- enrollment trends


def test_enrollment_trends_by_hand(conn):
    b = Hand(conn)
    # FY2024: one approved version.
    a24 = b.approved("Approved 2024", 2024, ts("2023-06-01T00:00:00"))
    b.enrollment(a24, "CP", "FRENCH", 100)
    b.enrollment(a24, "GS", "OTHER", 7)
    b.enrollment(a24, "6EME", "SAUDI", 40)
    b.enrollment(a24, "CP", "SAUDI", 50, deleted_at=ts("2024-01-01T00:00:00"))
    # FY2025: the latest approval wins over an older one and over a deleted later one;
    # the working draft does not count.
    a25 = b.approved("Approved 2025", 2025, ts("2024-06-01T00:00:00"))
    older = b.approved("Approved 2025 (older)", 2025, ts("2024-05-01T00:00:00"))
    dropped = b.approved(
        "Approved 2025 (deleted)",
        2025,
        ts("2024-07-01T00:00:00"),
        deleted_at=ts("2024-07-02T00:00:00"),
    )
    w25 = b.version("Working 2025", fiscal_year=2025, academic_year="2024-2025", status="working")
    b.enrollment(a25, "CP", "FRENCH", 110)
    b.enrollment(a25, "CP", "SAUDI", 5)
    b.enrollment(a25, "6EME", "SAUDI", 40)
    for other in (older, dropped, w25):
        b.enrollment(other, "CP", "FRENCH", 999)
    # FY2026: no approved version (submitted only).
    s26 = b.version("Submitted 2026", fiscal_year=2026, status="submitted")
    b.enrollment(s26, "CP", "FRENCH", 130)
    # FY2027: approved (approved_at unknown), but 2026 has none: no year-over-year.
    a27 = b.approved("Approved 2027", 2027, None)
    b.enrollment(a27, "CP", "FRENCH", 120)
    # Another school: its 2025 never compares with this school's 2024.
    org2 = b.organization("Other school")
    o25 = b.approved("Other 2025", 2025, ts("2024-06-01T00:00:00"), org=org2)
    b.enrollment(o25, "CP", "FRENCH", 3)

    assert_views_match_oracle(conn)
    for view in ("mv_enrollment_trends", "v_enrollment_trends"):
        rows = rows_of(conn, view)
        per_version = defaultdict(int)
        for r in rows:
            per_version[r["budget_version_id"]] += 1
        assert per_version == {a24: 45, a25: 45, a27: 45, o25: 45}, view

    level, nat = b.ref.levels, b.ref.nationalities

    def key(vid, lv, n):
        return {"budget_version_id": vid, "level_id": level[lv][0], "nationality_type_id": nat[n]}

    assert_row(
        conn,
        "enrollment_trends",
        key(a24, "CP", "FRENCH"),
        {
            "organization_id": b.org,
            "fiscal_year": 2024,
            "academic_year": "2023-2024",
            "version_name": "Approved 2024",
            "approved_at": ts("2023-06-01T00:00:00"),
            "cycle_code": "ELEM",
            "level_code": "CP",
            "level_sort_order": 4,
            "nationality_code": "FRENCH",
            "student_count": 100,
            "previous_budget_version_id": None,
            "previous_student_count": None,
            "yoy_change": None,
            "yoy_change_percent": None,
        },
    )
    assert_row(conn, "enrollment_trends", key(a24, "CP", "SAUDI"), {"student_count": 0})
    for lv, n, count, prev, change, pct in (
        ("CP", "FRENCH", 110, 100, 10, D("10.00")),
        ("CP", "SAUDI", 5, 0, 5, None),  # zero base
        ("GS", "OTHER", 0, 7, -7, D("-100.00")),  # level emptied out
        ("6EME", "SAUDI", 40, 40, 0, D("0.00")),
        ("PS", "FRENCH", 0, 0, 0, None),
    ):
        assert_row(
            conn,
            "enrollment_trends",
            key(a25, lv, n),
            {
                "version_name": "Approved 2025",
                "student_count": count,
                "previous_budget_version_id": a24,
                "previous_student_count": prev,
                "yoy_change": change,
                "yoy_change_percent": pct,
            },
        )
    assert_row(
        conn,
        "enrollment_trends",
        key(a27, "CP", "FRENCH"),
        {
            "approved_at": None,
            "student_count": 120,
            "previous_budget_version_id": None,
            "previous_student_count": None,
            "yoy_change": None,
            "yoy_change_percent": None,
        },
    )
    assert_row(
        conn,
        "enrollment_trends",
        key(o25, "CP", "FRENCH"),
        {"student_count": 3, "previous_budget_version_id": None, "yoy_change": None},
    )


def test_which_approved_version_wins(conn):
    """latest approved_at (NULL last), then latest updated_at, then greatest id."""
    b = Hand(conn)
    day = ts("2024-06-01T00:00:00")
    # 2030: same approved_at; the later updated_at wins.
    b.approved("2030 early update", 2030, day, updated_at=ts("2025-01-01T00:00:00"))
    w30 = b.approved("2030 late update", 2030, day, updated_at=ts("2025-01-02T00:00:00"))
    # 2031: same approved_at and updated_at; the greatest id wins.
    same = ts("2025-01-03T00:00:00")
    w31 = b.approved("2031 id ff", 2031, day, updated_at=same, id=uuid.UUID(int=2**128 - 1))
    b.approved("2031 id 01", 2031, day, updated_at=same, id=uuid.UUID(int=1))
    # 2032: a NULL approved_at loses to any date, however recent its update.
    w32 = b.approved("2032 dated", 2032, day - timedelta(days=300))
    b.approved("2032 undated", 2032, None, updated_at=ts("2026-01-01T00:00:00"))
    # 2033: a later approved_at wins over a later update.
    b.approved("2033 older approval", 2033, day, updated_at=ts("2026-01-01T00:00:00"))
    w33 = b.approved("2033 newer approval", 2033, day + timedelta(microseconds=1))
    for vid in (w30, w31, w32, w33):
        b.enrollment(vid, "MS", "SAUDI", 10)

    assert_views_match_oracle(conn)
    for view in ("mv_enrollment_trends", "v_enrollment_trends"):
        chosen = {r["fiscal_year"]: r["budget_version_id"] for r in rows_of(conn, view)}
        assert chosen == {2030: w30, 2031: w31, 2032: w32, 2033: w33}, view
        previous = {r["fiscal_year"]: r["previous_budget_version_id"] for r in rows_of(conn, view)}
        assert previous == {2030: None, 2031: w30, 2032: w31, 2033: w32}, view
    assert_row(
        conn,
        "enrollment_trends",
        {"budget_version_id": w31, "level_code": "MS", "nationality_code": "SAUDI"},
        {"student_count": 10, "previous_student_count": 10, "yoy_change_percent": D("0.00")},
    )


# --------------------------------------------------------------------------- financial ratios


def test_financial_ratios_by_hand(conn):
    b = Hand(conn)
    v = b.version("Budget 2026")
    b.revenue(v, "70110", "800.00")
    b.revenue(v, "70210", "150.00")
    b.revenue(v, "75800", "50.00")
    b.cost(v, "MAT", "100.00")
    b.cost(v, "ELEM", "150.00")
    b.cost(v, "ELEM", "50.00", code="64510")
    b.cost(v, "LYC", "300.00")
    b.cost(v, None, "100.00", code="64120")  # administration: no cycle
    b.cost(v, "LYC", "999.00", code="64111", deleted_at=ts("2025-04-01T00:00:00"))
    b.operating(v, "60610", "200.00")
    b.capex(v, "21830", "100.00")
    b.enrollment(v, "PS", "FRENCH", 10)
    b.enrollment(v, "GS", "SAUDI", 10)
    b.enrollment(v, "CP", "FRENCH", 30)
    b.enrollment(v, "TLE", "OTHER", 3)
    b.enrollment(v, "CM1", "FRENCH", 99, deleted_at=ts("2025-04-01T00:00:00"))
    empty = b.version("Empty", fiscal_year=2027, academic_year="2026-2027", status="working")
    b.version(
        "Deleted", fiscal_year=2028, academic_year="2027-2028", deleted_at=ts("2025-05-01T00:00:00")
    )

    assert_views_match_oracle(conn)
    for view in ("mv_financial_ratios", "v_financial_ratios"):
        assert {r["budget_version_id"] for r in rows_of(conn, view)} == {v, empty}, view
    assert_row(
        conn,
        "financial_ratios",
        {"budget_version_id": v},
        {
            "organization_id": b.org,
            "version_name": "Budget 2026",
            "fiscal_year": 2026,
            "status": "approved",
            "total_revenue_sar": D("1000.00"),
            "tuition_revenue_sar": D("800.00"),
            "fees_revenue_sar": D("150.00"),
            "other_revenue_sar": D("50.00"),
            "tuition_share_percent": D("80.00"),
            "fees_share_percent": D("15.00"),
            "other_revenue_share_percent": D("5.00"),
            "total_personnel_costs_sar": D("700.00"),
            "total_operating_costs_sar": D("200.00"),
            "total_capex_sar": D("100.00"),
            "total_expenses_sar": D("1000.00"),
            "personnel_share_percent": D("70.00"),
            "operating_share_percent": D("20.00"),
            "capex_share_percent": D("10.00"),
            "net_budget_sar": D("0.00"),
            "budget_margin_percent": D("0.00"),
            "total_students": 53,
            "mat_students": 20,
            "elem_students": 30,
            "coll_students": 0,
            "lyc_students": 3,
            "mat_personnel_cost_sar": D("100.00"),
            "elem_personnel_cost_sar": D("200.00"),
            "coll_personnel_cost_sar": D("0.00"),
            "lyc_personnel_cost_sar": D("300.00"),
            "unallocated_personnel_cost_sar": D("100.00"),
            "mat_personnel_cost_per_student_sar": D("5.00"),
            "elem_personnel_cost_per_student_sar": D("6.67"),
            "coll_personnel_cost_per_student_sar": None,  # no students in the cycle
            "lyc_personnel_cost_per_student_sar": D("100.00"),
            "total_cost_per_student_sar": D("18.87"),  # 1000 / 53
        },
    )
    zero = {c: 0 for c in oracle.FINANCIAL_RATIOS_COLUMNS if c.endswith(("_sar", "_students"))}
    zero.update({c: None for c in oracle.FINANCIAL_RATIOS_COLUMNS if c.endswith("_percent")})
    zero.update({c: None for c in oracle.FINANCIAL_RATIOS_COLUMNS if "_per_student_" in c})
    assert_row(conn, "financial_ratios", {"budget_version_id": empty}, zero)


def test_financial_ratios_zero_denominators_and_rounding(conn):
    b = Hand(conn)
    # Revenue lines of 0: shares and margin NULL; costs only in capex.
    v = b.version("Zero revenue")
    b.revenue(v, "70110", "0.00")
    b.revenue(v, "70900", "0.00")
    b.capex(v, "21830", "30.00")
    b.enrollment(v, "6EME", "FRENCH", 0)
    # Thirds: every share rounds, half away from zero.
    t = b.version("Thirds", fiscal_year=2027, academic_year="2026-2027", status="working")
    for code in ("70110", "70210", "75800"):
        b.revenue(t, code, "1.00")
    b.cost(t, "COLL", "2.00")
    b.enrollment(t, "6EME", "FRENCH", 3)
    b.operating(t, "60610", "1.00")

    assert_views_match_oracle(conn)
    assert_row(
        conn,
        "financial_ratios",
        {"budget_version_id": v},
        {
            "total_revenue_sar": D("0.00"),
            "tuition_share_percent": None,
            "fees_share_percent": None,
            "other_revenue_share_percent": None,
            "budget_margin_percent": None,
            "total_expenses_sar": D("30.00"),
            "capex_share_percent": D("100.00"),
            "personnel_share_percent": D("0.00"),
            "total_students": 0,
            "coll_students": 0,
            "coll_personnel_cost_per_student_sar": None,
            "total_cost_per_student_sar": None,
        },
    )
    assert_row(
        conn,
        "financial_ratios",
        {"budget_version_id": t},
        {
            "tuition_share_percent": D("33.33"),
            "fees_share_percent": D("33.33"),
            "other_revenue_share_percent": D("33.33"),
            "personnel_share_percent": D("66.67"),
            "operating_share_percent": D("33.33"),
            "coll_personnel_cost_per_student_sar": D("0.67"),
            "total_cost_per_student_sar": D("1.00"),
            "budget_margin_percent": D("0.00"),
        },
    )


# --------------------------------------------------------------------------- workforce utilization


def test_workforce_utilization_by_hand(conn):
    b = Hand(conn)
    v = b.version("Budget 2026", status="submitted")
    gone = ts("2025-04-01T00:00:00")
    # MATH: one requirement, three allocation rows across categories and cycles (a
    # join-then-sum would count the 36 hours three times), one deleted allocation.
    b.dhg(v, "MATH", "36.00", simple_fte=D("2.00"), rounded_fte=2, hsa_hours=D("4.50"))
    b.allocate(v, "MATH", "AEFE_DETACHED", "1.00")
    b.allocate(v, "MATH", "LOCAL", "0.50", cycle="LYC")
    b.allocate(v, "MATH", "LOCAL", "0.25")
    b.allocate(v, "MATH", "AEFE_FUNDED", "5.00", deleted_at=gone)
    # FRAN: a requirement of 0 hours, nothing allocated: every ratio NULL.
    b.dhg(v, "FRAN", "0.00")
    # PHYS: required, nobody allocated.
    b.dhg(v, "PHYS", "18.00", simple_fte=D("1.00"), rounded_fte=1)
    # EPS: allocated, no requirement.
    b.allocate(v, "EPS", "AEFE_FUNDED", "1.00")
    # ARAB: only a deleted requirement: no row.
    b.dhg(v, "ARAB", "10.00", deleted_at=gone)
    # A deleted version: no rows.
    dropped = b.version("Deleted", fiscal_year=2027, academic_year="2026-2027", deleted_at=gone)
    b.dhg(dropped, "MATH", "5.00")
    b.allocate(dropped, "MATH", "LOCAL", "1.00")

    assert_views_match_oracle(conn)
    subjects = {s: b.ref.subjects[s] for s in ("MATH", "FRAN", "PHYS", "EPS")}
    for view in ("mv_workforce_utilization", "v_workforce_utilization"):
        keys = {(r["budget_version_id"], r["subject_id"]) for r in rows_of(conn, view)}
        assert keys == {(v, s) for s in subjects.values()}, view

    def check(subject, expected):
        key = {"budget_version_id": v, "subject_id": subjects[subject]}
        assert_row(conn, "workforce_utilization", key, expected)

    check(
        "MATH",
        {
            "organization_id": b.org,
            "version_name": "Budget 2026",
            "fiscal_year": 2026,
            "status": "submitted",
            "subject_code": "MATH",
            "subject_name": "Mathematics",
            "subject_category": "sciences",
            "total_hours_per_week": D("36.00"),
            "simple_fte": D("2.00"),
            "rounded_fte": 2,
            "hsa_hours": D("4.50"),
            "hsa_share_percent": D("12.50"),
            "aefe_detached_fte": D("1.00"),
            "aefe_funded_fte": D("0"),
            "local_fte": D("0.75"),
            "total_allocated_fte": D("1.75"),
            "fte_gap": D("-0.25"),
            "utilization_percent": D("114.29"),  # 2 / 1.75
        },
    )
    check(
        "FRAN",
        {
            "total_hours_per_week": 0,
            "simple_fte": 0,
            "rounded_fte": 0,
            "hsa_hours": 0,
            "hsa_share_percent": None,
            "total_allocated_fte": 0,
            "fte_gap": 0,
            "utilization_percent": None,
        },
    )
    check(
        "PHYS",
        {
            "simple_fte": D("1.00"),
            "hsa_share_percent": D("0.00"),
            "total_allocated_fte": 0,
            "fte_gap": D("-1.00"),
            "utilization_percent": None,
        },
    )
    check(
        "EPS",
        {
            "total_hours_per_week": 0,
            "simple_fte": 0,
            "hsa_share_percent": None,
            "aefe_funded_fte": D("1.00"),
            "total_allocated_fte": D("1.00"),
            "fte_gap": D("1.00"),
            "utilization_percent": D("0.00"),
        },
    )


# --------------------------------------------------------------------------- edge cases


def test_empty_database(conn):
    """No data at all: every roadmap view is empty, materialized and live."""
    assert_views_match_oracle(conn)
    for name in ROADMAP:
        for view in (f"mv_{name}", f"v_{name}"):
            assert rows_of(conn, view) == [], view


def test_versions_without_rows(conn):
    """Versions with no child rows: one all-zero financial row each, no workforce row,
    45 zero rows of trends for an approved one (previous year NULL)."""
    b = Hand(conn)
    a = b.approved("Approved, empty", 2026, ts("2025-06-01T00:00:00"))
    w = b.version("Working, empty", status="working")
    expected = assert_views_match_oracle(conn)
    assert set(expected["financial_ratios"]) == {a, w}
    assert expected["workforce_utilization"] == {}
    trends = list(expected["enrollment_trends"].values())
    assert len(trends) == 45 and {r["budget_version_id"] for r in trends} == {a}
    assert all(r["student_count"] == 0 and r["yoy_change_percent"] is None for r in trends)


def test_reference_codes_the_views_do_not_name(conn):
    """A cycle or teacher category the app renamed (a code the views do not name): the
    cycle's students and costs leave its column (the costs become unallocated) and its
    levels carry the new code; the category's FTE counts in the total only."""
    generate(conn, SEEDS[0])
    b = Hand(conn)
    v = b.approved("Reference renamed", 2030, ts("2029-06-01T00:00:00"))
    b.enrollment(v, "CM1", "FRENCH", 5)
    b.enrollment(v, "TLE", "FRENCH", 4)
    b.enrollment(v, "CP", "OTHER", 6)
    b.cost(v, "LYC", "40.00")
    b.dhg(v, "EPS", "24.00", simple_fte=D("1.00"), rounded_fte=1)
    b.allocate(v, "EPS", "LOCAL", "2.00")
    b.allocate(v, "EPS", "AEFE_FUNDED", "1.00")
    renames = (("academic_cycles", "LYC"), ("teacher_categories", "LOCAL"))
    try:
        for table, code in renames:
            conn.execute(
                sql.SQL("UPDATE {} SET code = %s WHERE code = %s").format(
                    sql.Identifier("efir_budget", table)
                ),
                (f"{code}_X", code),
            )
        assert_views_match_oracle(conn)
        for view in ("mv_enrollment_trends", "v_enrollment_trends"):
            mine = [r for r in rows_of(conn, view) if r["budget_version_id"] == v]
            assert len(mine) == 15 * 3, view  # every level x every nationality
            assert {r["cycle_code"] for r in mine if r["level_code"] == "TLE"} == {"LYC_X"}
            assert sum(r["student_count"] for r in mine) == 15
        assert_row(
            conn,
            "financial_ratios",
            {"budget_version_id": v},
            {
                "total_students": 15,
                "elem_students": 11,
                "lyc_students": 0,  # TLE's cycle is no longer LYC
                "lyc_personnel_cost_sar": D("0.00"),
                "unallocated_personnel_cost_sar": D("40.00"),
                "total_personnel_costs_sar": D("40.00"),
            },
        )
        assert_row(
            conn,
            "workforce_utilization",
            {"budget_version_id": v, "subject_id": b.ref.subjects["EPS"]},
            {
                "subject_code": "EPS",
                "local_fte": D("0"),
                "aefe_funded_fte": D("1.00"),
                "total_allocated_fte": D("3.00"),
                "utilization_percent": D("33.33"),
            },
        )
    finally:
        for table, code in renames:
            conn.execute(
                sql.SQL("UPDATE {} SET code = %s WHERE code = %s").format(
                    sql.Identifier("efir_budget", table)
                ),
                (code, f"{code}_X"),
            )
