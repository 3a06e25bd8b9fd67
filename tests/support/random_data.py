"""Seeded random budget data for the view tests, inserted with executemany.

Everything is deterministic for a seed (ids included), and every row satisfies the
source schema (migrations/versions/0001_source_schema.py: ids and timestamps given,
every NOT NULL column filled, the CHECKs and the plain unique keys held). The data is
shaped to hit the cases the KPI views get wrong: several one-to-many tables per
version (several rows per account, across cycles and categories), versions with no
rows or only some tables, soft-deleted versions and child rows (a soft-deleted row
keeps its unique key, so its key is never a live row's), zero students, zero revenue
(no revenue row, or revenue rows of 0), account codes across every PCG prefix, and
explicit updated_at values spread over a year (never two equal in practice:
microsecond resolution).
"""

from __future__ import annotations

import itertools
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
    "70900",  # rebates (never negative: amount_sar >= 0)
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
CAPEX_CATEGORIES = {
    "20510": "software",
    "21310": "building",
    "21540": "equipment",
    "21830": "it",
    "21840": "furniture",
    "21880": "equipment",
}
CAPEX_ITEMS = ("Laptops", "Projectors", "Desks", "Lab kit", "Licences", "Roof works")
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
        # Versions whose revenue rows are all 0 (total revenue 0 with rows present).
        self.zero_revenue: set[uuid.UUID] = set()

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
            # organizations: (id, name, is_active), nothing else.
            org = {"id": self.uid(), "name": f"Ecole {self.data.seed}-{o}", "is_active": True}
            self.data.rows["organizations"].append(org)
            for fy in years:
                self.versions_for(org["id"], fy)
            # At least one live version per school has revenue rows adding up to 0.
            live = [
                v
                for v in self.data.rows["budget_versions"]
                if v["organization_id"] == org["id"] and v["deleted_at"] is None
            ]
            self.zero_revenue.add(self.rng.choice(live)["id"])
        for v in self.data.rows["budget_versions"]:
            self.children(v)
        return self.data

    def versions_for(self, org_id: uuid.UUID, fy: int) -> None:
        rng = self.rng
        statuses = ["working"] if rng.random() < 0.7 else []
        statuses += rng.sample(STATUSES[1:], rng.randint(1, 3))
        # Soft-deleted versions, often an extra "working" one among them (nothing limits
        # the working versions of an organization and year).
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
        if v["id"] in self.zero_revenue:
            self.revenue(v["id"], zero=True)
            for build in self.builders:
                if build != self.revenue and rng.random() < 0.75:
                    build(v["id"])
            return
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
        p_deleted: float = 0.15,
    ) -> None:
        """One row per key of the table's unique key, soft-deleted with probability
        ``p_deleted`` (every one when ``only_deleted``). The unique keys are plain: a
        soft-deleted row keeps its key, so deleted and live rows of a version always have
        distinct keys. ``make(key, deleted)`` gives the table's own columns."""
        rows = self.data.rows[table]
        for key in keys:
            deleted = only_deleted or self.maybe_deleted(p_deleted)
            rows.append({**self.common(deleted), **make(key, deleted)})

    def _some(self, choices: list[Any], low: int, high: int) -> list[Any]:
        """Between ``low`` and ``high`` distinct choices (fewer if there are not enough)."""
        return self.rng.sample(choices, min(len(choices), self.rng.randint(low, high)))

    # ---- one builder per table

    def enrollment(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        pairs = [(lv, nat) for lv in self.ref.levels for nat in self.ref.nationalities]
        keys = self._some(pairs, 1, 20)
        zero = rng.random() < 0.15  # a version with zero students in total

        def make(key, deleted):
            lv, nat = key
            return {
                "budget_version_id": vid,
                "level_id": self.ref.levels[lv][0],
                "nationality_type_id": self.ref.nationalities[nat],
                "student_count": 0 if zero else rng.choice([0, rng.randint(1, 80)]),
                "notes": None,
            }

        self._keyed("enrollment_plans", keys, make, only_deleted)

    def class_structures(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = self._some(sorted(self.ref.levels), 1, len(self.ref.levels))

        def make(lv, deleted):
            classes = rng.randint(1, 5)
            # avg_class_size must lie in (0, 35]: 1 to 35 students per class.
            students = rng.randint(classes, 35 * classes)
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
                "calculation_method": rng.choice(["target", "manual"]),
                "notes": None,
            }

        self._keyed("class_structures", keys, make, only_deleted)

    def dhg(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = self._some(sorted(self.ref.subjects), 1, len(self.ref.subjects))

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
        """Several rows per subject (across cycles and categories): the key is
        (version, subject, cycle, category)."""
        rng = self.rng
        subjects = rng.sample(sorted(self.ref.subjects), 3)
        combos = list(
            itertools.product(subjects, sorted(self.ref.cycles), sorted(self.ref.categories))
        )
        keys = self._some(combos, 1, 12)

        def make(key, deleted):
            subj, cyc, cat = key
            return {
                "budget_version_id": vid,
                "subject_id": self.ref.subjects[subj],
                "cycle_id": self.ref.cycles[cyc],
                "category_id": self.ref.categories[cat],
                "fte_count": self.money(0, 12) or Decimal("0.01"),  # fte_count > 0
                "notes": None,
            }

        self._keyed("teacher_allocations", keys, make, only_deleted)

    def revenue(self, vid: uuid.UUID, only_deleted: bool = False, zero: bool | None = None) -> None:
        rng = self.rng
        keys = self._some(list(REVENUE_ACCOUNTS), 1, len(REVENUE_ACCOUNTS))
        # Revenue rows all of 0: total revenue exactly 0 with rows present (amounts are
        # never negative, so rows no longer cancel out).
        if zero is None:
            zero = not only_deleted and rng.random() < 0.15

        def make(code, deleted):
            if deleted:
                amount = self.money(1, 9_999_999)
            elif zero:
                amount = ZERO
            else:
                amount = self.money(0, 100_000) if code == "70900" else self.money(0, 3_000_000)
            return {
                "budget_version_id": vid,
                "account_code": code,
                "description": f"Revenue {code}",
                "category": "tuition" if code.startswith("701") else "other",
                "amount_sar": amount,
                "is_calculated": rng.random() < 0.5,
                "calculation_driver": rng.choice([None, "enrollment"]),
                "trimester": rng.choice([None, 1, 2, 3]),
                "notes": None,
            }

        # Zero revenue keeps every row live: rows present, total 0.
        self._keyed("revenue_plans", keys, make, only_deleted, p_deleted=0 if zero else 0.15)

    def personnel(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        """Several rows per account (across cycles and categories, some without either):
        the key is (version, account, cycle, category)."""
        rng = self.rng
        accounts = self._some(list(PERSONNEL_ACCOUNTS), 1, 5)
        combos = list(
            itertools.product(
                accounts, [None, *sorted(self.ref.cycles)], [None, *sorted(self.ref.categories)]
            )
        )
        keys = self._some(combos, 1, 15)

        def make(key, deleted):
            code, cyc, cat = key
            fte = self.money(0, 20)
            unit = self.money(50_000, 400_000)
            return {
                "budget_version_id": vid,
                "account_code": code,
                "description": f"Personnel {code}",
                "category_id": self.ref.categories[cat] if cat else None,
                "cycle_id": self.ref.cycles[cyc] if cyc else None,
                "fte_count": fte,
                "unit_cost_sar": unit,
                "total_cost_sar": (fte * unit).quantize(Decimal("0.01"), ROUND_HALF_UP),
                "is_calculated": rng.random() < 0.5,
                "calculation_driver": None,
                "notes": None,
            }

        self._keyed("personnel_cost_plans", keys, make, only_deleted)

    def operating(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        keys = self._some(list(OPERATING_ACCOUNTS), 1, len(OPERATING_ACCOUNTS))

        def make(code, deleted):
            return {
                "budget_version_id": vid,
                "account_code": code,
                "description": f"Operating {code}",
                "category": rng.choice(["supplies", "utilities", "maintenance", "other"]),
                "amount_sar": self.money(0, 500_000),
                "is_calculated": rng.random() < 0.5,
                "calculation_driver": None,
                "notes": None,
            }

        self._keyed("operating_cost_plans", keys, make, only_deleted)

    def capex(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        """Several rows per account (different items): the key is (version, account,
        description)."""
        rng = self.rng
        accounts = self._some(list(CAPEX_ACCOUNTS), 1, 3)
        keys = self._some(list(itertools.product(accounts, CAPEX_ITEMS)), 1, 6)

        def make(key, deleted):
            code, item = key
            qty = rng.randint(1, 40)
            unit = self.money(100, 50_000)
            return {
                "budget_version_id": vid,
                "account_code": code,
                "description": f"{item} ({code})",
                "category": CAPEX_CATEGORIES[code],
                "quantity": qty,
                "unit_cost_sar": unit,
                "total_cost_sar": qty * unit,
                "acquisition_date": date(2025, rng.randint(1, 12), rng.randint(1, 28)),
                "useful_life_years": rng.choice([1, 3, 5, 10, 20, 50]),
                "notes": None,
            }

        self._keyed("capex_plans", keys, make, only_deleted)

    def consolidations(self, vid: uuid.UUID, only_deleted: bool = False) -> None:
        rng = self.rng
        by_code = {code: (name, cat, rev) for code, name, cat, rev in CONSOLIDATION_ACCOUNTS}
        keys = self._some(sorted(by_code), 1, len(by_code))

        def make(code, deleted):
            name, cat, rev = by_code[code]
            if deleted and rng.random() < 0.6:  # deleted rows often carry other labels
                name, cat, rev = f"{name} (old)", rng.choice(CATEGORIES), not rev
            # A revenue amount is never negative; another account's may be (a credit).
            amount = self.money(0, 5_000_000) if rev else self.money(-1000, 5_000_000)
            return {
                "budget_version_id": vid,
                "account_code": code,
                "account_name": name,
                "consolidation_category": cat,
                "is_revenue": rev,
                "amount_sar": amount,
                "source_table": "revenue_plans" if rev else "personnel_cost_plans",
                "source_count": rng.randint(0, 30),
                "is_calculated": rng.random() < 0.5,
                "notes": None,
            }

        self._keyed("budget_consolidations", keys, make, only_deleted)


def generate(conn: psycopg.Connection, seed: int, n_orgs: int = 3) -> Dataset:
    """Generate and insert a random dataset; returns what was inserted."""
    data = Generator(Reference.load(conn), seed).build(n_orgs=n_orgs)
    data.insert(conn)
    return data
