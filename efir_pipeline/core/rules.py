"""The refresh rules of PIPELINE.md, in one place: which change is high, medium or low.

The database logs facts (``efir_budget.change_log``: table, version, rows, statuses,
levels, transaction); this module turns them into a priority when the sensors read
them. Thresholds are configuration (environment), not code and not data, so changing
one takes effect at the next sensor tick and never needs a migration.

Which *views* a change concerns is not decided here: ``catalog.views_reading(table)``.

| priority | change |
|---|---|
| high | a version's visible status changes (working -> approved, created, deleted, restored); one transaction writing more than ``bulk_rows`` rows of a table; a ``budget_consolidations`` write (the app rewrites a version's consolidation as a whole); a TRUNCATE |
| medium | an enrollment change touching more than ``level_fraction`` of the levels of a version (distinct levels over the whole transaction); a DHG change (``dhg_teacher_requirements``, ``teacher_allocations``) |
| low | everything else (single edits, drafts): the nightly refresh |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from efir_pipeline.core.settings import Settings


class Priority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Change:
    """One change_log row, as the sensors read it."""

    id: int
    table_name: str
    budget_version_id: UUID | None
    operation: str
    rows_affected: int | None
    old_status: str | None
    new_status: str | None
    level_ids: tuple[UUID, ...] | None
    txid: int
    changed_at: datetime
    txn_rows: int | None
    """Rows of ``table_name`` the whole transaction wrote (every statement and version)."""


@dataclass(frozen=True)
class Classified:
    change: Change
    priority: Priority
    reason: str


@dataclass(frozen=True)
class RefreshRules:
    bulk_rows: int = 100
    """More rows than this written to one table by one statement or transaction: high."""
    level_fraction: float = 0.10
    """An enrollment change touching more than this share of a version's levels: medium."""
    medium_batch_seconds: int = 50 * 60
    """Medium changes of a view are collected this long after the first, then refreshed
    together; 50 min leaves the sensor tick, the queue and the refresh inside the hour."""
    status_table: str = "budget_versions"
    consolidation_tables: frozenset[str] = field(
        default_factory=lambda: frozenset({"budget_consolidations"})
    )
    level_tables: frozenset[str] = field(default_factory=lambda: frozenset({"enrollment_plans"}))
    medium_tables: frozenset[str] = field(
        default_factory=lambda: frozenset({"dhg_teacher_requirements", "teacher_allocations"})
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshRules:
        """``EFIR_BULK_ROWS``, ``EFIR_MEDIUM_LEVEL_FRACTION``, ``EFIR_MEDIUM_BATCH_WINDOW``."""
        return cls(
            bulk_rows=settings.bulk_rows,
            level_fraction=settings.medium_level_fraction,
            medium_batch_seconds=int(settings.medium_batch_window.seconds),
        )

    @property
    def rule_tables(self) -> frozenset[str]:
        """Tables whose every change may be above low (whatever its size)."""
        return self.consolidation_tables | self.level_tables | self.medium_tables


def classify(
    changes: Iterable[Change], rules: RefreshRules, total_levels: int = 15
) -> list[Classified]:
    """The priority of each change, with the reason (shown in run tags and logs).

    Rules that speak of a "transaction" look at all the changes given from the same
    transaction; callers pass whole transactions (a transaction's log rows become
    visible together, at its commit).
    """
    changes = list(changes)
    levels: dict[tuple[int, str, UUID | None], set[UUID]] = defaultdict(set)
    for c in changes:
        if c.table_name in rules.level_tables and c.level_ids:
            levels[(c.txid, c.table_name, c.budget_version_id)].update(c.level_ids)
    out = []
    for c in changes:
        priority, reason = _priority(c, rules, total_levels, levels)
        out.append(Classified(c, priority, reason))
    return out


def _priority(c: Change, rules: RefreshRules, total_levels: int, levels) -> tuple[Priority, str]:
    if c.operation == "TRUNCATE":
        return Priority.HIGH, f"TRUNCATE of {c.table_name}"
    if c.table_name == rules.status_table and c.old_status != c.new_status:
        return Priority.HIGH, f"status change {c.old_status or '-'} -> {c.new_status or '-'}"
    if c.txn_rows is not None and c.txn_rows > rules.bulk_rows:
        return Priority.HIGH, f"bulk write: {c.txn_rows} rows of {c.table_name} in one transaction"
    if c.table_name in rules.consolidation_tables:
        return Priority.HIGH, f"consolidation rewritten ({c.table_name})"
    if c.table_name in rules.level_tables:
        touched = len(levels.get((c.txid, c.table_name, c.budget_version_id), ()))
        if total_levels and touched > rules.level_fraction * total_levels:
            return Priority.MEDIUM, f"{c.table_name}: {touched}/{total_levels} levels of a version"
    if c.table_name in rules.medium_tables:
        return Priority.MEDIUM, f"DHG change ({c.table_name})"
    return Priority.LOW, f"single edit ({c.table_name})"
