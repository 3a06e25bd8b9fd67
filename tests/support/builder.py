"""Hand-written budget rows with explicit timestamps, for the hand-checked view examples."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import psycopg

from tests.support.random_data import Reference, insert

D = Decimal


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Builder:
    """Hand-written rows with explicit timestamps; fills the columns a test does not care about."""

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "organizations": {"is_active": True},
        "budget_versions": {
            "academic_year": "2025-2026",
            "fiscal_year": 2026,
            "status": "approved",
            "submitted_at": None,
            "approved_at": None,
            "notes": None,
            "is_baseline": False,
            "parent_version_id": None,
        },
        "enrollment_plans": {},
        "class_structures": {
            "requires_atsem": False,
            "atsem_count": 0,
            "calculation_method": "manual",
        },
        "dhg_teacher_requirements": {
            "standard_teaching_hours": D(18),
            "simple_fte": D(0),
            "rounded_fte": 0,
            "hsa_hours": D(0),
        },
        "teacher_allocations": {},
        "revenue_plans": {
            "description": "r",
            "category": "c",
            "is_calculated": False,
            "trimester": None,
        },
        "personnel_cost_plans": {
            "description": "p",
            "category_id": None,
            "cycle_id": None,
            "fte_count": D(1),
            "unit_cost_sar": D(0),
            "is_calculated": False,
        },
        "operating_cost_plans": {"description": "o", "category": "c", "is_calculated": False},
        "capex_plans": {
            "description": "k",
            "category": "equipment",
            "quantity": 1,
            "unit_cost_sar": D(0),
            "useful_life_years": 5,
            "acquisition_date": date(2025, 9, 1),
        },
        "budget_consolidations": {
            "source_table": "revenue_plans",
            "source_count": 1,
            "is_calculated": True,
        },
    }
    # Tables without the audit columns: organizations is (id, name, is_active).
    NO_AUDIT: ClassVar[frozenset[str]] = frozenset({"organizations"})

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.ref = Reference.load(conn)
        self.clock = ts("2025-03-01T08:00:00")
        self.org = self.organization(f"EFIR {uuid.uuid4().hex[:6]}")

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def add(self, table: str, *, updated_at=None, deleted_at=None, **cols) -> uuid.UUID:
        """One row with an id and (for the tables having them) created_at, updated_at and
        deleted_at: none has a server default."""
        if table in self.NO_AUDIT:
            row = {"id": uuid.uuid4(), **self.DEFAULTS.get(table, {}), **cols}
        else:
            updated_at = updated_at or self.tick()
            row = {
                "id": uuid.uuid4(),
                "created_at": updated_at - timedelta(days=1),
                "updated_at": updated_at,
                "deleted_at": deleted_at,
                **self.DEFAULTS.get(table, {}),
                **cols,
            }
        insert(self.conn, table, [row])
        return row["id"]

    def organization(self, name: str) -> uuid.UUID:
        return self.add("organizations", name=name)

    def version(self, name: str, **cols) -> uuid.UUID:
        return self.add("budget_versions", organization_id=self.org, name=name, **cols)

    def enrollment(self, vid, level, nationality, count, **kw):
        return self.add(
            "enrollment_plans",
            budget_version_id=vid,
            level_id=self.ref.levels[level][0],
            nationality_type_id=self.ref.nationalities[nationality],
            student_count=count,
            **kw,
        )

    def classes(self, vid, level, students, classes, **kw):
        return self.add(
            "class_structures",
            budget_version_id=vid,
            level_id=self.ref.levels[level][0],
            total_students=students,
            number_of_classes=classes,
            avg_class_size=(D(students) / classes).quantize(D("0.01")),
            **kw,
        )

    def dhg(self, vid, subject, hours, **kw):
        return self.add(
            "dhg_teacher_requirements",
            budget_version_id=vid,
            subject_id=self.ref.subjects[subject],
            total_hours_per_week=D(hours),
            **kw,
        )

    def allocation(self, vid, category, fte, *, subject="MATH", cycle="COLL", **kw):
        return self.add(
            "teacher_allocations",
            budget_version_id=vid,
            subject_id=self.ref.subjects[subject],
            cycle_id=self.ref.cycles[cycle],
            category_id=self.ref.categories[category],
            fte_count=D(fte),
            **kw,
        )

    def revenue(self, vid, code, amount, **kw):
        return self.add(
            "revenue_plans", budget_version_id=vid, account_code=code, amount_sar=D(amount), **kw
        )

    def personnel(self, vid, code, amount, **kw):
        return self.add(
            "personnel_cost_plans",
            budget_version_id=vid,
            account_code=code,
            total_cost_sar=D(amount),
            **kw,
        )

    def operating(self, vid, code, amount, **kw):
        return self.add(
            "operating_cost_plans",
            budget_version_id=vid,
            account_code=code,
            amount_sar=D(amount),
            **kw,
        )

    def capex(self, vid, code, amount, **kw):
        return self.add(
            "capex_plans", budget_version_id=vid, account_code=code, total_cost_sar=D(amount), **kw
        )

    def consolidation(self, vid, code, name, category, is_revenue, amount, **kw):
        return self.add(
            "budget_consolidations",
            budget_version_id=vid,
            account_code=code,
            account_name=name,
            consolidation_category=category,
            is_revenue=is_revenue,
            amount_sar=D(amount),
            **kw,
        )
