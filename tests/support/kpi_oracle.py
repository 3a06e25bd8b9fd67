"""An independent computation of the two KPI views, in plain Python over the raw rows.

Nothing here runs the views' SQL: ``load_raw`` reads every source table with
``SELECT *`` and the functions below follow the documented definitions literally, one
table at a time, with ``decimal.Decimal`` arithmetic. Rounding is ROUND_HALF_UP, which
is what PostgreSQL's ``round(numeric, n)`` does (half away from zero).

Reference rows (nationalities, teacher categories) have no soft delete: each one
exists, and a child row counts in a per-code column only when its reference row has
that code.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

SCHEMA = "efir_budget"

# Child tables of a budget version read by mv_kpi_dashboard (their rows, deleted ones
# included, feed source_updated_at).
KPI_CHILD_TABLES = (
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
)
RAW_TABLES = (
    "organizations",
    "budget_versions",
    "nationality_types",
    "teacher_categories",
    *KPI_CHILD_TABLES,
    "budget_consolidations",
)

KPI_COLUMNS = (
    "budget_version_id",
    "organization_id",
    "version_name",
    "fiscal_year",
    "academic_year",
    "status",
    "is_baseline",
    "french_students",
    "saudi_students",
    "other_students",
    "total_students",
    "total_classes",
    "avg_class_size",
    "total_atsem",
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
    "budget_margin_percent",
    "personnel_cost_ratio_percent",
    "revenue_per_student_sar",
    "personnel_cost_per_student_sar",
    "hours_per_student",
    "students_per_class",
    "source_updated_at",
    # The budget app's former column names, kept for its queries.
    "last_updated",
    "avg_class_size_overall",
    "total_atsem_required",
    "students_per_teaching_hour",
    "avg_students_per_class",
)

CONSOLIDATION_COLUMNS = (
    "budget_version_id",
    "account_code",
    "organization_id",
    "fiscal_year",
    "status",
    "account_name",
    "consolidation_category",
    "is_revenue",
    "total_amount_sar",
    "line_item_count",
    "source_count",
    "last_updated",
)

ZERO = Decimal(0)
_CTX = decimal.Context(prec=60, rounding=ROUND_HALF_UP)

Raw = Mapping[str, list[dict[str, Any]]]


# --------------------------------------------------------------------------- reading


def load_raw(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every source table, as stored (``SELECT *``)."""
    raw: dict[str, list[dict[str, Any]]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for table in RAW_TABLES:
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, table)))
            raw[table] = cur.fetchall()
    return raw


def read_view(conn: psycopg.Connection, view: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and all rows of ``efir_budget.<view>``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, view)))
        rows = cur.fetchall()
        columns = [d.name for d in cur.description]
    return columns, rows


# --------------------------------------------------------------------------- arithmetic


def live(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["deleted_at"] is None]


def dsum(values: Iterable[Any]) -> Decimal:
    total = ZERO
    for v in values:
        total = _CTX.add(total, Decimal(v))
    return total


def rnd(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=_CTX)


def ratio(num: Decimal, den: Decimal, places: int, scale: int = 1) -> Decimal | None:
    """round(num / den * scale, places); None when den is 0."""
    if den == 0:
        return None
    return rnd(_CTX.multiply(_CTX.divide(Decimal(num), Decimal(den)), Decimal(scale)), places)


def _by_version(rows: Iterable[dict[str, Any]]) -> dict[UUID, list[dict[str, Any]]]:
    out: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["budget_version_id"]].append(r)
    return out


# --------------------------------------------------------------------------- mv_kpi_dashboard


def kpi_dashboard(raw: Raw) -> dict[UUID, dict[str, Any]]:
    """Expected rows of mv_kpi_dashboard, keyed by budget_version_id."""
    # Reference rows (never soft-deleted): id -> code.
    nationality = {r["id"]: r["code"] for r in raw["nationality_types"]}
    category = {r["id"]: r["code"] for r in raw["teacher_categories"]}

    all_rows = {t: _by_version(raw[t]) for t in KPI_CHILD_TABLES}  # deleted included
    live_rows = {t: _by_version(live(raw[t])) for t in KPI_CHILD_TABLES}

    out: dict[UUID, dict[str, Any]] = {}
    for v in live(raw["budget_versions"]):
        vid = v["id"]
        rows = {t: live_rows[t].get(vid, []) for t in KPI_CHILD_TABLES}
        k: dict[str, Any] = {
            "budget_version_id": vid,
            "organization_id": v["organization_id"],
            "version_name": v["name"],
            "fiscal_year": v["fiscal_year"],
            "academic_year": v["academic_year"],
            "status": v["status"],
            "is_baseline": v["is_baseline"],
        }

        # Enrollment, on its own.
        enr = rows["enrollment_plans"]
        for code, col in (
            ("FRENCH", "french_students"),
            ("SAUDI", "saudi_students"),
            ("OTHER", "other_students"),
        ):
            k[col] = sum(
                r["student_count"] for r in enr if nationality.get(r["nationality_type_id"]) == code
            )
        total_students = sum(r["student_count"] for r in enr)
        k["total_students"] = total_students

        # Class structure.
        cs = rows["class_structures"]
        total_classes = sum(r["number_of_classes"] for r in cs)
        k["total_classes"] = total_classes
        # Weighted by classes (not the mean of the rows' stored avg_class_size).
        k["avg_class_size"] = ratio(Decimal(sum(r["total_students"] for r in cs)), total_classes, 2)
        k["total_atsem"] = sum(r["atsem_count"] for r in cs)

        # DHG.
        dhg = rows["dhg_teacher_requirements"]
        total_dhg_hours = dsum(r["total_hours_per_week"] for r in dhg)
        total_fte_required = dsum(r["simple_fte"] for r in dhg)
        k["total_dhg_hours"] = total_dhg_hours
        k["total_fte_required"] = total_fte_required
        k["total_rounded_fte"] = sum(r["rounded_fte"] for r in dhg)
        k["total_hsa_hours"] = dsum(r["hsa_hours"] for r in dhg)

        # Teacher allocations.
        ta = rows["teacher_allocations"]
        for code, col in (
            ("AEFE_DETACHED", "aefe_detached_fte"),
            ("AEFE_FUNDED", "aefe_funded_fte"),
            ("LOCAL", "local_fte"),
        ):
            k[col] = dsum(r["fte_count"] for r in ta if category.get(r["category_id"]) == code)
        total_allocated = dsum(r["fte_count"] for r in ta)
        k["total_allocated_fte"] = total_allocated
        k["fte_gap"] = total_allocated - total_fte_required

        # Revenue.
        rev = rows["revenue_plans"]
        tuition = dsum(r["amount_sar"] for r in rev if r["account_code"].startswith("701"))
        fees = dsum(r["amount_sar"] for r in rev if r["account_code"].startswith(("702", "703")))
        other_rev = dsum(
            r["amount_sar"] for r in rev if not r["account_code"].startswith(("701", "702", "703"))
        )
        total_revenue = dsum(r["amount_sar"] for r in rev)
        assert tuition + fees + other_rev == total_revenue  # oracle self-check
        k["tuition_revenue_sar"] = rnd(tuition, 2)
        k["fees_revenue_sar"] = rnd(fees, 2)
        k["other_revenue_sar"] = rnd(other_rev, 2)
        k["total_revenue_sar"] = rnd(total_revenue, 2)

        # Personnel.
        pers = rows["personnel_cost_plans"]
        teaching = dsum(r["total_cost_sar"] for r in pers if r["account_code"].startswith("6411"))
        other_pers = dsum(
            r["total_cost_sar"] for r in pers if not r["account_code"].startswith("6411")
        )
        total_personnel = dsum(r["total_cost_sar"] for r in pers)
        k["teaching_salaries_sar"] = rnd(teaching, 2)
        k["other_personnel_sar"] = rnd(other_pers, 2)
        k["total_personnel_costs_sar"] = rnd(total_personnel, 2)

        total_operating = dsum(r["amount_sar"] for r in rows["operating_cost_plans"])
        total_capex = dsum(r["total_cost_sar"] for r in rows["capex_plans"])
        k["total_operating_costs_sar"] = rnd(total_operating, 2)
        k["total_capex_sar"] = rnd(total_capex, 2)

        net = total_revenue - total_personnel - total_operating - total_capex
        k["net_budget_sar"] = rnd(net, 2)
        k["budget_margin_percent"] = ratio(net, total_revenue, 2, 100)
        k["personnel_cost_ratio_percent"] = ratio(total_personnel, total_revenue, 2, 100)
        k["revenue_per_student_sar"] = ratio(total_revenue, Decimal(total_students), 2)
        k["personnel_cost_per_student_sar"] = ratio(total_personnel, Decimal(total_students), 2)
        k["hours_per_student"] = ratio(total_dhg_hours, Decimal(total_students), 4)
        k["students_per_class"] = ratio(Decimal(total_students), Decimal(total_classes), 2)

        stamps: list[datetime] = [v["updated_at"]]
        for t in KPI_CHILD_TABLES:
            stamps.extend(r["updated_at"] for r in all_rows[t].get(vid, []))
        k["source_updated_at"] = max(stamps)

        # The budget app's former names: the same figures, and students per weekly DHG
        # hour (the inverse of hours_per_student; NULL without DHG hours).
        k["last_updated"] = k["source_updated_at"]
        k["avg_class_size_overall"] = k["avg_class_size"]
        k["total_atsem_required"] = k["total_atsem"]
        k["students_per_teaching_hour"] = ratio(Decimal(total_students), total_dhg_hours, 4)
        k["avg_students_per_class"] = k["students_per_class"]

        assert set(k) == set(KPI_COLUMNS)
        out[vid] = k
    return out


# --------------------------------------------------------------------------- mv_budget_consolidation


def budget_consolidation(raw: Raw) -> dict[tuple[UUID, str], dict[str, Any]]:
    """Expected rows of mv_budget_consolidation, keyed by (budget_version_id, account_code).

    "The latest updated one" among rows sharing a key: greatest updated_at (the
    generators never write two rows of one key with the same updated_at).
    """
    versions = {v["id"]: v for v in live(raw["budget_versions"])}
    groups: dict[tuple[UUID, str], list[dict[str, Any]]] = defaultdict(list)
    for r in live(raw["budget_consolidations"]):
        if r["budget_version_id"] in versions:
            groups[(r["budget_version_id"], r["account_code"])].append(r)

    out: dict[tuple[UUID, str], dict[str, Any]] = {}
    for (vid, code), rows in groups.items():
        v = versions[vid]
        stamps = [r["updated_at"] for r in rows]
        assert len(set(stamps)) == len(stamps), f"tie in updated_at for {vid}/{code}"
        latest = max(rows, key=lambda r: r["updated_at"])
        out[(vid, code)] = {
            "budget_version_id": vid,
            "account_code": code,
            "organization_id": v["organization_id"],
            "fiscal_year": v["fiscal_year"],
            "status": v["status"],
            "account_name": latest["account_name"],
            "consolidation_category": latest["consolidation_category"],
            "is_revenue": latest["is_revenue"],
            "total_amount_sar": rnd(dsum(r["amount_sar"] for r in rows), 2),
            "line_item_count": len(rows),
            "source_count": sum(r["source_count"] for r in rows),
            "last_updated": max(stamps),
        }
    return out


# --------------------------------------------------------------------------- comparing

KPI_VIEWS = ("mv_kpi_dashboard", "v_kpi_dashboard")
CONSOLIDATION_VIEWS = ("mv_budget_consolidation", "v_budget_consolidation")


def same(actual: Any, expected: Any) -> bool:
    """Equal values, with NULL distinct from 0 and booleans distinct from numbers."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, (int, Decimal)) and isinstance(actual, (int, float, Decimal)):
        if isinstance(actual, float):  # a float column would be a defect of its own
            return False
        return Decimal(actual) == Decimal(expected)
    return actual == expected


def diff_rows(
    label: str,
    actual_rows: list[dict[str, Any]],
    expected: Mapping[Any, dict[str, Any]],
    key_columns: tuple[str, ...],
    describe: Mapping[Any, str] | None = None,
) -> list[str]:
    """Human-readable differences between a view's rows and the oracle's."""
    problems: list[str] = []

    def key_of(row: dict[str, Any]) -> Any:
        return row[key_columns[0]] if len(key_columns) == 1 else tuple(row[c] for c in key_columns)

    def name(key: Any) -> str:
        extra = f" ({describe[key]})" if describe and key in describe else ""
        return f"{key}{extra}"

    actual: dict[Any, dict[str, Any]] = {}
    for row in actual_rows:
        key = key_of(row)
        if key in actual:
            problems.append(f"{label}: duplicate row for key {name(key)}")
        actual[key] = row

    for key in sorted(set(expected) - set(actual), key=str):
        problems.append(f"{label}: MISSING row for key {name(key)}")
    for key in sorted(set(actual) - set(expected), key=str):
        problems.append(f"{label}: EXTRA row for key {name(key)} (should not exist)")

    for key in sorted(set(actual) & set(expected), key=str):
        exp, act = expected[key], actual[key]
        for col, want in exp.items():
            got = act.get(col)
            if not same(got, want):
                problems.append(
                    f"{label}: key {name(key)} column {col}: view={got!r} oracle={want!r}"
                )
    return problems


def assert_views_match_oracle(conn: psycopg.Connection):
    """Both KPI views and both consolidation views (materialized and live), as they are
    now (refresh first), equal the oracle: the same columns, rows and values.

    Returns (raw rows, expected KPI rows, expected consolidation rows)."""
    raw = load_raw(conn)
    kpi = kpi_dashboard(raw)
    cons = budget_consolidation(raw)
    names = {v["id"]: f"version {v['name']!r}" for v in raw["budget_versions"]}
    cons_names = {key: names[key[0]] for key in cons}

    problems: list[str] = []
    for views, expected, key, columns, describe in (
        (KPI_VIEWS, kpi, ("budget_version_id",), KPI_COLUMNS, names),
        (
            CONSOLIDATION_VIEWS,
            cons,
            ("budget_version_id", "account_code"),
            CONSOLIDATION_COLUMNS,
            cons_names,
        ),
    ):
        for view in views:
            got_columns, rows = read_view(conn, view)
            missing = sorted(set(columns) - set(got_columns))
            extra = sorted(set(got_columns) - set(columns))
            if missing or extra:
                problems.append(f"{view}: columns missing {missing}, unexpected {extra}")
            problems += diff_rows(view, rows, expected, key, describe)
    assert not problems, f"{len(problems)} differences from the oracle:\n" + "\n".join(
        problems[:60]
    )
    return raw, kpi, cons
