"""Seeded random budget data for the view tests, inserted with executemany.

Everything is deterministic for a seed (ids included). The data is shaped to hit
the cases the KPI views get wrong: several one-to-many tables per version,
versions with no rows or only some tables, soft-deleted versions and rows
(including deleted rows sharing a unique key with a live row), zero students,
zero revenue, account codes across every PCG prefix, and explicit updated_at
values spread over a year (never two equal in practice: microsecond resolution).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from psycopg import sql

SCHEMA = "efir_budget"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
ZERO = Decimal("0.00")

REVENUE_ACCOUNTS = (
    "70110",
    "70111",
    "70120",
    "70130",
    "7011",
    "70210",
    "70220",
    "70230",
    "7021",
    "70310",
    "70320",
    "70610",
    "70620",
    "70800",
    "70900",  # rebates: often negative
    "74000",
    "75800",
    "76100",
    "77100",
    "7070",
)
PERSONNEL_ACCOUNTS = (
    "64110",
    "64111",
    "64115",
    "6411",
    "64120",
    "64121",
    "64130",
    "64140",
    "64510",
    "64520",
    "64700",
    "641",
)
OPERATING_ACCOUNTS = (
    "60610",
    "60620",
    "60640",
    "61320",
    "61520",
    "61600",
    "62260",
    "62510",
    "62600",
)
CAPEX_ACCOUNTS = ("20510", "21310", "21540", "21830", "21840", "21880")
CONSOLIDATION_ACCOUNTS = (
    ("70110", "Scolarite T1", "revenue_tuition", True),
    ("70120", "Scolarite T2", "revenue_tuition", True),
    ("70210", "Frais inscription", "revenue_fees", True),
    ("70310", "DAI", "revenue_fees", True),
    ("75800", "Produits divers", "revenue_other", True),
    ("64110", "Salaires enseignants", "personnel_teaching", False),
    ("64120", "Salaires administratifs", "personnel_admin", False),
    ("64130", "Personnel de service", "personnel_support", False),
    ("64510", "Charges sociales", "personnel_social", False),
    ("60610", "Fournitures", "operating_supplies", False),
    ("60620", "Electricite", "operating_utilities", False),
    ("61520", "Entretien", "operating_maintenance", False),
    ("61600", "Assurances", "operating_insurance", False),
    ("62260", "Honoraires", "operating_other", False),
    ("21830", "Materiel informatique", "capex_it", False),
    ("21840", "Mobilier", "capex_furniture", False),
    ("21540", "Materiel pedagogique", "capex_equipment", False),
    ("21310", "Batiments", "capex_building", False),
    ("20510", "Logiciels", "capex_software", False),
)
CATEGORIES = sorted({c for _, _, c, _ in CONSOLIDATION_ACCOUNTS})
STATUSES = ("working", "submitted", "approved", "forecast", "superseded")


# --------------------------------------------------------------------------- reference rows


@dataclass
class Reference:
    cycles: dict[str, uuid.UUID]
    levels: dict[str, tuple[uuid.UUID, uuid.UUID, bool]]  # code -> (id, cycle_id, is_secondary)
    nationalities: dict[str, uuid.UUID]
    categories: dict[str, uuid.UUID]
    subjects: dict[str, uuid.UUID]

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Reference:
        def codes(table: str) -> dict[str, uuid.UUID]:
            q = sql.SQL("SELECT code, id FROM {} ORDER BY code").format(
                sql.Identifier(SCHEMA, table)
            )
            return dict(conn.execute(q).fetchall())

        levels = {
            code: (lid, cid, sec)
            for code, lid, cid, sec in conn.execute(
                "SELECT code, id, cycle_id, is_secondary FROM efir_budget.academic_levels ORDER BY code"
            ).fetchall()
        }
        return cls(
            cycles=codes("academic_cycles"),
            levels=levels,
            nationalities=codes("nationality_types"),
            categories=codes("teacher_categories"),
            subjects=codes("subjects"),
        )


# --------------------------------------------------------------------------- inserting


class Clock:
    """Later and later timestamps (random steps of 1 s to 1 h); ``last`` is the latest one."""

    def __init__(self, rng: random.Random, start: datetime, *, microseconds: bool = False):
        self.rng, self.last, self.microseconds = rng, start, microseconds

    def __call__(self) -> datetime:
        step = timedelta(seconds=self.rng.randint(1, 3600))
        if self.microseconds:
            step += timedelta(microseconds=self.rng.randint(0, 999_999))
        self.last += step
        return self.last


def pick_ids(
    conn: psycopg.Connection,
    rng: random.Random,
    table: str,
    n: int,
    where: str = "deleted_at IS NULL",
) -> list[uuid.UUID]:
    """Up to ``n`` ids of ``table`` matching ``where`` (test-written SQL), chosen by ``rng``."""
    ids = [
        r[0]
        for r in conn.execute(
            sql.SQL("SELECT id FROM {} WHERE " + where + " ORDER BY id").format(
                sql.Identifier("efir_budget", table)
            )
        ).fetchall()
    ]
    return rng.sample(ids, min(n, len(ids)))


def insert(conn: psycopg.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert dict rows (all with the same keys) into efir_budget.<table>."""
    if not rows:
        return
    columns = list(rows[0])
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(SCHEMA, table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    with conn.cursor() as cur:
        cur.executemany(query, [tuple(r[c] for c in columns) for r in rows])


# Insert order respecting foreign keys.
TABLE_ORDER = (
    "organizations",
    "budget_versions",
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
    "budget_consolidations",
)


@dataclass
class Dataset:
    seed: int
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in TABLE_ORDER}
    )

    def insert(self, conn: psycopg.Connection) -> None:
        for table in TABLE_ORDER:
            insert(conn, table, self.rows[table])

    def versions(self, *, deleted: bool | None = None) -> list[dict[str, Any]]:
        rows = self.rows["budget_versions"]
        if deleted is None:
            return rows
        return [v for v in rows if (v["deleted_at"] is not None) == deleted]


# --------------------------------------------------------------------------- generating


class Generator:
    """Builds a Dataset; ``rng`` drives every choice, so a seed reproduces it exactly."""

    def __init__(self, ref: Reference, seed: int) -> None:
        self.ref = ref
        self.rng = random.Random(seed)
        self.data = Dataset(seed)

    # ---- small helpers

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def ts(self) -> datetime:
        return T0 + timedelta(microseconds=self.rng.randrange(365 * 86400 * 10**6))

    def money(self, low: int, high: int) -> Decimal:
        """A numeric(…,2) value between low and high (in SAR)."""
        return Decimal(self.rng.randint(low * 100, high * 100)) / 100

    def common(self, deleted: bool = False) -> dict[str, Any]:
        created = self.ts()
        updated = created + timedelta(microseconds=self.rng.randrange(30 * 86400 * 10**6))
        return {
            "id": self.uid(),
            "created_at": created,
            "updated_at": updated,
            "deleted_at": updated if deleted else None,
        }

    def maybe_deleted(self, p: float = 0.15) -> bool:
        return self.rng.random() < p

    # ---- organizations and versions

    def build(self, n_orgs: int = 3, years: tuple[int, ...] = (2025, 2026)) -> Dataset:
        for o in range(n_orgs):
            org = {**self.common(), "code": f"ORG{self.data.seed}_{o}", "name": f"Ecole {o}"}
            self.data.rows["organizations"].append(org)
            for fy in years:
                self.versions_for(org["id"], fy)
        for v in self.data.rows["budget_versions"]:
            self.children(v)
        return self.data

    def versions_for(self, org_id: uuid.UUID, fy: int) -> None:
        rng = self.rng
        statuses = ["working"] if rng.random() < 0.7 else []
        statuses += rng.sample(STATUSES[1:], rng.randint(1, 3))
        # Soft-deleted versions, a deleted extra "working" one among them (allowed by the
        # partial unique index next to the live working version).
        deleted = [rng.choice(STATUSES) for _ in range(rng.randint(0, 2))]
        if rng.random() < 0.5:
            deleted.append("working")
        earlier = [v for v in self.data.rows["budget_versions"] if v["organization_id"] == org_id]
        for i, (status, is_deleted) in enumerate(
            [(s, False) for s in statuses] + [(s, True) for s in deleted]
        ):
            parent = rng.choice(earlier)["id"] if earlier and rng.random() < 0.4 else None
            v = {
                **self.common(is_deleted),
                "organization_id": org_id,
                "name": f"{'Deleted ' if is_deleted else ''}{status.title()} {fy} #{i}",
                "fiscal_year": fy,
                "academic_year": f"{fy - 1}-{fy}",
                "status": status,
                "submitted_at": self.ts() if status != "working" else None,
                "approved_at": self.ts() if status == "approved" else None,
                "notes": rng.choice([None, "generated"]),
                "is_baseline": rng.random() < 0.3,
                "parent_version_id": parent,
            }
            self.data.rows["budget_versions"].append(v)
            earlier.append(v)

    def children(self, v: dict[str, Any]) -> None:
        rng = self.rng
        shape = rng.random()
        if shape < 0.12:
            return  # a version with no child rows at all
        if shape < 0.2:
            # Only soft-deleted child rows: sums are 0 but source_updated_at moves.
            for build in rng.sample(self.builders, 3):
                build(v["id"], only_deleted=True)
            return
        for build in self.builders:
            if rng.random() < 0.75:
                build(v["id"])

    @property
    def builders(self):
        return [
            self.enrollment,
            self.class_structures,
            self.dhg,
            self.teacher_allocations,
            self.revenue,
            self.personnel,
            self.operating,
            self.capex,
            self.consolidations,
        ]

    def _keyed(
        self,
        table: str,
        keys: list[Any],
        make,
        only_deleted: bool,
        p_deleted: float = 0.1,
        dup_deleted: float = 0.25,
    ) -> None:
        """Rows of a table with a unique key among non-deleted rows.

        Each key gets one row (soft-deleted with probability p_deleted), and sometimes
        extra soft-deleted rows sharing the key with it. ``make(key, deleted)``.
        """
        rows = self.data.rows[table]
        for key in keys:
            deleted = only_deleted or self.maybe_deleted(p_deleted)
            rows.append({**self.common(deleted), **make(key, deleted)})
            while self.rng.random() < dup_deleted:
                rows.append({**self.common(True), **make(key, True)})

    def _multi(self, table: str, n: int, make, only_deleted: bool) -> None:
        """Rows of a table without unique key: several rows per account on purpose."""
        rows = self.data.rows[table]
        for _ in range(n):
            rows.append({**self.common(only_deleted or self.maybe_deleted()), **make()})

    # ---- one builder per table

    def enrollment(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        pairs = [(lv, nat) for lv in self.ref.levels for nat in self.ref.nationalities]
        keys = rng.sample(pairs, rng.randint(1, min(len(pairs), 20)))
        zero = rng.random() < 0.15  # a version with zero students in total

        def make(key, deleted):
            lv, nat = key
            return {
                "budget_version_id": vid,
                "level_id": self.ref.levels[lv][0],
                "nationality_type_id": self.ref.nationalities[nat],
                "student_count": 0 if zero else rng.choice([0, rng.randint(1, 80)]),
            }

        self._keyed("enrollment_plans", keys, make, only_deleted)

    def class_structures(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = rng.sample(sorted(self.ref.levels), rng.randint(1, len(self.ref.levels)))

        def make(lv, deleted):
            classes = rng.randint(1, 5)
            students = rng.randint(0, 28 * classes)
            atsem = lv in ("PS", "MS", "GS")
            return {
                "budget_version_id": vid,
                "level_id": self.ref.levels[lv][0],
                "total_students": students,
                "number_of_classes": classes,
                "avg_class_size": (Decimal(students) / classes).quantize(
                    Decimal("0.01"), ROUND_HALF_UP
                ),
                "requires_atsem": atsem,
                "atsem_count": rng.randint(0, classes) if atsem else 0,
            }

        self._keyed("class_structures", keys, make, only_deleted)

    def dhg(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = rng.sample(sorted(self.ref.subjects), rng.randint(1, len(self.ref.subjects)))

        def make(subj, deleted):
            hours = self.money(0, 150)
            std = Decimal(rng.choice([18, 24]))
            fte = (hours / std).quantize(Decimal("0.01"), ROUND_HALF_UP)
            return {
                "budget_version_id": vid,
                "subject_id": self.ref.subjects[subj],
                "total_hours_per_week": hours,
                "standard_teaching_hours": std,
                "simple_fte": fte,
                "rounded_fte": int(fte.to_integral_value(ROUND_HALF_UP)),
                "hsa_hours": self.money(0, 20),
            }

        self._keyed("dhg_teacher_requirements", keys, make, only_deleted)

    def teacher_allocations(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        subj = rng.sample(sorted(self.ref.subjects), 3)
        cycles = sorted(self.ref.cycles)
        cats = sorted(self.ref.categories)

        def make():
            return {
                "budget_version_id": vid,
                "subject_id": self.ref.subjects[rng.choice(subj)],
                "cycle_id": self.ref.cycles[rng.choice(cycles)],
                "category_id": self.ref.categories[rng.choice(cats)],
                "fte_count": self.money(0, 12),
            }

        self._multi("teacher_allocations", rng.randint(1, 12), make, only_deleted)

    def revenue(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = rng.sample(REVENUE_ACCOUNTS, rng.randint(1, len(REVENUE_ACCOUNTS)))
        amounts = {
            k: self.money(-5_000, 100_000) if k == "70900" else self.money(0, 3_000_000)
            for k in keys
        }
        # Amounts that cancel out: total revenue exactly 0 with rows present.
        balanced = not only_deleted and rng.random() < 0.15
        if balanced:
            amounts[keys[-1]] = -sum(amounts[k] for k in keys[:-1]) if len(keys) > 1 else ZERO

        def make(code, deleted):
            return {
                "budget_version_id": vid,
                "account_code": code,
                "description": f"Revenue {code}",
                "category": "tuition" if code.startswith("701") else "other",
                "amount_sar": self.money(1, 9_999_999) if deleted else amounts[code],
                "trimester": rng.choice([None, 1, 2, 3]),
            }

        # A balanced version keeps every key live (deleted duplicates still appear).
        self._keyed("revenue_plans", keys, make, only_deleted, p_deleted=0 if balanced else 0.1)

    def personnel(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        cats = [None, *sorted(self.ref.categories)]
        cycles = [None, *sorted(self.ref.cycles)]

        def make():
            fte = self.money(0, 20)
            unit = self.money(50_000, 400_000)
            cat = rng.choice(cats)
            cyc = rng.choice(cycles)
            return {
                "budget_version_id": vid,
                "account_code": rng.choice(PERSONNEL_ACCOUNTS),
                "description": "Personnel",
                "category_id": self.ref.categories[cat] if cat else None,
                "cycle_id": self.ref.cycles[cyc] if cyc else None,
                "fte_count": fte,
                "unit_cost_sar": unit,
                "total_cost_sar": (fte * unit).quantize(Decimal("0.01"), ROUND_HALF_UP),
            }

        self._multi("personnel_cost_plans", rng.randint(1, 15), make, only_deleted)

    def operating(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng

        def make():
            return {
                "budget_version_id": vid,
                "account_code": rng.choice(OPERATING_ACCOUNTS),
                "description": "Operating",
                "category": rng.choice(["supplies", "utilities", "maintenance", "other"]),
                "amount_sar": self.money(0, 500_000),
            }

        self._multi("operating_cost_plans", rng.randint(1, 10), make, only_deleted)

    def capex(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng

        def make():
            qty = rng.randint(1, 40)
            unit = self.money(100, 50_000)
            return {
                "budget_version_id": vid,
                "account_code": rng.choice(CAPEX_ACCOUNTS),
                "description": "Capex",
                "quantity": qty,
                "unit_cost_sar": unit,
                "total_cost_sar": qty * unit,
                "depreciation_years": rng.choice([3, 5, 10, 20]),
                "acquisition_date": date(2025, rng.randint(1, 12), rng.randint(1, 28)),
            }

        self._multi("capex_plans", rng.randint(1, 6), make, only_deleted)

    def consolidations(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        by_code = {code: (name, cat, rev) for code, name, cat, rev in CONSOLIDATION_ACCOUNTS}
        keys = rng.sample(sorted(by_code), rng.randint(1, len(by_code)))

        def make(code, deleted):
            name, cat, rev = by_code[code]
            if deleted and rng.random() < 0.6:  # deleted rows often carry other labels
                name, cat, rev = f"{name} (old)", rng.choice(CATEGORIES), not rev
            return {
                "budget_version_id": vid,
                "account_code": code,
                "account_name": name,
                "consolidation_category": cat,
                "is_revenue": rev,
                "amount_sar": self.money(-1000, 5_000_000),
                "source_table": "revenue_plans" if rev else "personnel_cost_plans",
                "source_count": rng.randint(0, 30),
            }

        self._keyed("budget_consolidations", keys, make, only_deleted, dup_deleted=0.4)


def generate(conn: psycopg.Connection, seed: int, n_orgs: int = 3) -> Dataset:
    """Generate and insert a random dataset; returns what was inserted."""
    data = Generator(Reference.load(conn), seed).build(n_orgs=n_orgs)
    data.insert(conn)
    return data
