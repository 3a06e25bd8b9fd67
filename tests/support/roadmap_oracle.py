"""An independent computation of the three roadmap views, in plain Python over raw rows.

Nothing here runs the views' SQL: the rows come from ``SELECT *`` of each table and the
functions follow docs/views.md literally with ``decimal.Decimal`` arithmetic (rounding
half away from zero, as PostgreSQL's ``round(numeric, n)``). mv_financial_ratios reads
mv_kpi_dashboard; here its version totals come from the independent KPI oracle
(tests/support/kpi_oracle.py), never from the database's view.

Reference rows (cycles, levels, nationalities, subjects, teacher categories) have no
soft delete: every one exists; only versions and their child rows can be soft-deleted.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tests.support import kpi_oracle as kpi
from tests.support.kpi_oracle import dsum, live, ratio, rnd

SCHEMA = "efir_budget"
REFERENCE_TABLES = ("academic_cycles", "academic_levels", "subjects")
CYCLES = ("MAT", "ELEM", "COLL", "LYC")
CATEGORIES = (
    ("AEFE_DETACHED", "aefe_detached_fte"),
    ("AEFE_FUNDED", "aefe_funded_fte"),
    ("LOCAL", "local_fte"),
)

ENROLLMENT_TRENDS_KEY = ("budget_version_id", "level_id", "nationality_type_id")
ENROLLMENT_TRENDS_COLUMNS = (
    *ENROLLMENT_TRENDS_KEY,
    "organization_id",
    "fiscal_year",
    "academic_year",
    "version_name",
    "approved_at",
    "cycle_code",
    "level_code",
    "level_sort_order",
    "nationality_code",
    "student_count",
    "previous_budget_version_id",
    "previous_student_count",
    "yoy_change",
    "yoy_change_percent",
)

FINANCIAL_RATIOS_KEY = ("budget_version_id",)
FINANCIAL_RATIOS_COLUMNS = (
    "budget_version_id",
    "organization_id",
    "version_name",
    "fiscal_year",
    "status",
    "total_revenue_sar",
    "tuition_revenue_sar",
    "fees_revenue_sar",
    "other_revenue_sar",
    "tuition_share_percent",
    "fees_share_percent",
    "other_revenue_share_percent",
    "total_personnel_costs_sar",
    "total_operating_costs_sar",
    "total_capex_sar",
    "total_expenses_sar",
    "personnel_share_percent",
    "operating_share_percent",
    "capex_share_percent",
    "net_budget_sar",
    "budget_margin_percent",
    "total_students",
    *(f"{c.lower()}_students" for c in CYCLES),
    *(f"{c.lower()}_personnel_cost_sar" for c in CYCLES),
    "unallocated_personnel_cost_sar",
    *(f"{c.lower()}_personnel_cost_per_student_sar" for c in CYCLES),
    "total_cost_per_student_sar",
)

WORKFORCE_UTILIZATION_KEY = ("budget_version_id", "subject_id")
WORKFORCE_UTILIZATION_COLUMNS = (
    *WORKFORCE_UTILIZATION_KEY,
    "organization_id",
    "version_name",
    "fiscal_year",
    "status",
    "subject_code",
    "subject_name",
    "subject_category",
    "total_hours_per_week",
    "simple_fte",
    "rounded_fte",
    "hsa_hours",
    "hsa_share_percent",
    "aefe_detached_fte",
    "aefe_funded_fte",
    "local_fte",
    "total_allocated_fte",
    "fte_gap",
    "utilization_percent",
)

Raw = dict[str, list[dict[str, Any]]]
NEVER = datetime.min.replace(tzinfo=UTC)


def load_raw(conn: psycopg.Connection) -> Raw:
    """Every row of every table the KPI and roadmap views read."""
    raw = kpi.load_raw(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        for table in REFERENCE_TABLES:
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, table)))
            raw[table] = cur.fetchall()
    return raw


# --------------------------------------------------------------------------- approved versions


def approval_rank(v: dict[str, Any]) -> tuple:
    """Greater is preferred: an approved_at (latest first, NULL after every date), then
    updated_at, then id (PostgreSQL orders uuids bytewise: the order of their integers)."""
    stamp: datetime | None = v["approved_at"]
    return (stamp is not None, stamp or NEVER, v["updated_at"], v["id"])


def approved_versions(raw: Raw) -> dict[tuple[UUID, int], dict[str, Any]]:
    """(organization_id, fiscal_year) -> the approved version of that year."""
    candidates: dict[tuple[UUID, int], list[dict[str, Any]]] = defaultdict(list)
    for v in live(raw["budget_versions"]):
        if v["status"] == "approved":
            candidates[(v["organization_id"], v["fiscal_year"])].append(v)
    return {key: max(versions, key=approval_rank) for key, versions in candidates.items()}


# --------------------------------------------------------------------------- mv_enrollment_trends


def enrollment_trends(raw: Raw) -> dict[tuple[UUID, UUID, UUID], dict[str, Any]]:
    """Expected rows of mv_enrollment_trends, keyed by (version, level, nationality)."""
    approved = approved_versions(raw)
    cycles = {c["id"]: c["code"] for c in raw["academic_cycles"]}
    levels = raw["academic_levels"]
    nationalities = raw["nationality_types"]

    counts: dict[tuple[UUID, UUID, UUID], int] = defaultdict(int)
    for e in live(raw["enrollment_plans"]):
        counts[(e["budget_version_id"], e["level_id"], e["nationality_type_id"])] += e[
            "student_count"
        ]

    out = {}
    for (org, fy), v in approved.items():
        prev = approved.get((org, fy - 1))
        for lv in levels:
            for nat in nationalities:
                students = counts.get((v["id"], lv["id"], nat["id"]), 0)
                before = counts.get((prev["id"], lv["id"], nat["id"]), 0) if prev else None
                change = None if before is None else students - before
                key = (v["id"], lv["id"], nat["id"])
                out[key] = {
                    "budget_version_id": v["id"],
                    "level_id": lv["id"],
                    "nationality_type_id": nat["id"],
                    "organization_id": org,
                    "fiscal_year": fy,
                    "academic_year": v["academic_year"],
                    "version_name": v["name"],
                    "approved_at": v["approved_at"],
                    "cycle_code": cycles.get(lv["cycle_id"]),
                    "level_code": lv["code"],
                    "level_sort_order": lv["sort_order"],
                    "nationality_code": nat["code"],
                    "student_count": students,
                    "previous_budget_version_id": prev["id"] if prev else None,
                    "previous_student_count": before,
                    "yoy_change": change,
                    "yoy_change_percent": None
                    if not before
                    else ratio(Decimal(change), Decimal(before), 2, 100),
                }
                assert set(out[key]) == set(ENROLLMENT_TRENDS_COLUMNS)
    return out


# --------------------------------------------------------------------------- mv_financial_ratios


def financial_ratios(raw: Raw) -> dict[UUID, dict[str, Any]]:
    """Expected rows of mv_financial_ratios, keyed by budget_version_id.

    Version totals from the KPI oracle; the per-cycle split from the raw rows."""
    totals = kpi.kpi_dashboard(raw)
    cycle_code = {c["id"]: c["code"] for c in raw["academic_cycles"]}
    level_cycle = {lv["id"]: cycle_code.get(lv["cycle_id"]) for lv in raw["academic_levels"]}

    students: dict[UUID, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CYCLES, 0))
    for e in live(raw["enrollment_plans"]):
        code = level_cycle.get(e["level_id"])
        if code in CYCLES:
            students[e["budget_version_id"]][code] += e["student_count"]

    costs: dict[UUID, dict[str | None, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for p in live(raw["personnel_cost_plans"]):
        code = cycle_code.get(p["cycle_id"])
        costs[p["budget_version_id"]][code if code in CYCLES else None].append(p["total_cost_sar"])

    out = {}
    for vid, k in totals.items():
        revenue = k["total_revenue_sar"]
        personnel = k["total_personnel_costs_sar"]
        operating = k["total_operating_costs_sar"]
        capex = k["total_capex_sar"]
        expenses = personnel + operating + capex
        row: dict[str, Any] = {
            "budget_version_id": vid,
            "organization_id": k["organization_id"],
            "version_name": k["version_name"],
            "fiscal_year": k["fiscal_year"],
            "status": k["status"],
            "total_revenue_sar": revenue,
            "tuition_revenue_sar": k["tuition_revenue_sar"],
            "fees_revenue_sar": k["fees_revenue_sar"],
            "other_revenue_sar": k["other_revenue_sar"],
            "tuition_share_percent": ratio(k["tuition_revenue_sar"], revenue, 2, 100),
            "fees_share_percent": ratio(k["fees_revenue_sar"], revenue, 2, 100),
            "other_revenue_share_percent": ratio(k["other_revenue_sar"], revenue, 2, 100),
            "total_personnel_costs_sar": personnel,
            "total_operating_costs_sar": operating,
            "total_capex_sar": capex,
            "total_expenses_sar": rnd(expenses, 2),
            "personnel_share_percent": ratio(personnel, expenses, 2, 100),
            "operating_share_percent": ratio(operating, expenses, 2, 100),
            "capex_share_percent": ratio(capex, expenses, 2, 100),
            "net_budget_sar": k["net_budget_sar"],
            "budget_margin_percent": k["budget_margin_percent"],
            "total_students": k["total_students"],
            "unallocated_personnel_cost_sar": rnd(dsum(costs[vid][None]), 2),
            "total_cost_per_student_sar": ratio(expenses, Decimal(k["total_students"]), 2),
        }
        for code in CYCLES:
            n = students[vid][code]
            cost = dsum(costs[vid][code])
            row[f"{code.lower()}_students"] = n
            row[f"{code.lower()}_personnel_cost_sar"] = rnd(cost, 2)
            row[f"{code.lower()}_personnel_cost_per_student_sar"] = ratio(cost, Decimal(n), 2)
        assert set(row) == set(FINANCIAL_RATIOS_COLUMNS)
        out[vid] = row
    return out


# --------------------------------------------------------------------------- mv_workforce_utilization


def workforce_utilization(raw: Raw) -> dict[tuple[UUID, UUID], dict[str, Any]]:
    """Expected rows of mv_workforce_utilization, keyed by (budget_version_id, subject_id)."""
    versions = {v["id"]: v for v in live(raw["budget_versions"])}
    subjects = {s["id"]: s for s in raw["subjects"]}
    category = {c["id"]: c["code"] for c in raw["teacher_categories"]}

    required: dict[tuple[UUID, UUID], list[dict[str, Any]]] = defaultdict(list)
    for r in live(raw["dhg_teacher_requirements"]):
        required[(r["budget_version_id"], r["subject_id"])].append(r)
    allocated: dict[tuple[UUID, UUID], list[dict[str, Any]]] = defaultdict(list)
    for a in live(raw["teacher_allocations"]):
        allocated[(a["budget_version_id"], a["subject_id"])].append(a)

    out = {}
    for key in set(required) | set(allocated):
        vid, sid = key
        v = versions.get(vid)
        if v is None:  # a soft-deleted version
            continue
        s = subjects.get(sid)
        req, alloc = required.get(key, []), allocated.get(key, [])
        hours = dsum(r["total_hours_per_week"] for r in req)
        fte = dsum(r["simple_fte"] for r in req)
        hsa = dsum(r["hsa_hours"] for r in req)
        total_allocated = dsum(a["fte_count"] for a in alloc)
        row: dict[str, Any] = {
            "budget_version_id": vid,
            "subject_id": sid,
            "organization_id": v["organization_id"],
            "version_name": v["name"],
            "fiscal_year": v["fiscal_year"],
            "status": v["status"],
            "subject_code": s["code"] if s else None,
            "subject_name": s["name_en"] if s else None,
            "subject_category": s["category"] if s else None,
            "total_hours_per_week": hours,
            "simple_fte": fte,
            "rounded_fte": sum(r["rounded_fte"] for r in req),
            "hsa_hours": hsa,
            "hsa_share_percent": ratio(hsa, hours, 2, 100),
            "total_allocated_fte": total_allocated,
            "fte_gap": total_allocated - fte,
            "utilization_percent": ratio(fte, total_allocated, 2, 100),
        }
        for code, column in CATEGORIES:
            row[column] = dsum(
                a["fte_count"] for a in alloc if category.get(a["category_id"]) == code
            )
        assert set(row) == set(WORKFORCE_UTILIZATION_COLUMNS)
        out[key] = row
    return out
