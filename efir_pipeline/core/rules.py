"""The refresh rules, in one place: which change is high, medium or low.

The database logs facts (``efir_budget.change_log``: table, version, rows, statuses,
levels, transaction); this module turns them into a priority when the sensors read
them. Thresholds are configuration (settings), not code and not data, so changing one
never needs a migration. Each rule is declared once (:data:`RULES`): its test on a
change and the SQL condition the sensors use to fetch only what may be above low.

Which *views* a change concerns is not decided here: ``catalog.views_reading(table)``.

| priority | change |
|---|---|
| high | a refresh asked for by name (``efir_budget.request_refresh``); a version's visible status changes (working -> approved, created, deleted, restored); one transaction writing more than ``bulk_rows`` rows of a table; a ``budget_consolidations`` write (the app rewrites a version's consolidation as a whole); a TRUNCATE |
| medium | an enrollment change touching more than ``level_fraction`` of the levels of a version (distinct levels over the whole transaction); a DHG change (``dhg_teacher_requirements``, ``teacher_allocations``) |
| low | everything else (single edits, drafts): the nightly refresh |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
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


@dataclass(frozen=True)
class Context:
    """What a rule may look at besides the change: the other changes of its transaction."""

    rules: RefreshRules
    total_levels: int
    levels: dict[tuple[int, str, UUID | None], set[UUID]]

    def levels_touched(self, c: Change) -> int:
        """Distinct levels of the change's version its whole transaction touched."""
        return len(self.levels.get((c.txid, c.table_name, c.budget_version_id), ()))


@dataclass(frozen=True)
class Rule:
    """One refresh rule, said once: the test on a change, and a SQL condition on
    ``change_log`` (alias ``o``) that holds whenever the test can, so the sensors fetch
    only the changes that may be above low priority (the rest are surely low)."""

    priority: Priority
    sql: str
    """Parameters: the fields of :class:`RefreshRules`, e.g. ``%(bulk_rows)s``."""
    reason: Callable[[Change, Context], str | None]
    """The reason when the rule applies to the change, else None."""


def _request(c: Change, ctx: Context) -> str | None:
    return f"refresh of {c.table_name} requested" if c.operation == "REQUEST" else None


def _truncate(c: Change, ctx: Context) -> str | None:
    return f"TRUNCATE of {c.table_name}" if c.operation == "TRUNCATE" else None


def _status(c: Change, ctx: Context) -> str | None:
    if c.table_name == ctx.rules.status_table and c.old_status != c.new_status:
        return f"status change {c.old_status or '-'} -> {c.new_status or '-'}"
    return None


def _bulk(c: Change, ctx: Context) -> str | None:
    if c.txn_rows is not None and c.txn_rows > ctx.rules.bulk_rows:
        return f"bulk write: {c.txn_rows} rows of {c.table_name} in one transaction"
    return None


def _consolidation(c: Change, ctx: Context) -> str | None:
    if c.table_name in ctx.rules.consolidation_tables:
        return f"consolidation rewritten ({c.table_name})"
    return None


def _levels(c: Change, ctx: Context) -> str | None:
    if c.table_name not in ctx.rules.level_tables or not ctx.total_levels:
        return None
    touched = ctx.levels_touched(c)
    if touched > ctx.rules.level_fraction * ctx.total_levels:
        return f"{c.table_name}: {touched}/{ctx.total_levels} levels of a version"
    return None


def _dhg(c: Change, ctx: Context) -> str | None:
    return f"DHG change ({c.table_name})" if c.table_name in ctx.rules.medium_tables else None


RULES: tuple[Rule, ...] = (
    Rule(Priority.HIGH, "o.operation = 'REQUEST'", _request),
    Rule(Priority.HIGH, "o.operation = 'TRUNCATE'", _truncate),
    Rule(Priority.HIGH, "o.old_status IS DISTINCT FROM o.new_status", _status),
    Rule(Priority.HIGH, "o.txn_rows > %(bulk_rows)s", _bulk),
    Rule(Priority.HIGH, "o.table_name = ANY(%(consolidation_tables)s)", _consolidation),
    Rule(Priority.MEDIUM, "o.table_name = ANY(%(level_tables)s)", _levels),
    Rule(Priority.MEDIUM, "o.table_name = ANY(%(medium_tables)s)", _dhg),
)
"""In order: the first rule that applies decides; none applies: low (the nightly run)."""


def may_be_above_low_sql() -> str:
    """The sensors' prefilter: a change matching none of these is low whatever else."""
    return " OR ".join(f"({rule.sql})" for rule in RULES)


def sql_parameters(rules: RefreshRules) -> dict[str, object]:
    """The parameters :func:`may_be_above_low_sql` refers to."""
    return {
        "bulk_rows": rules.bulk_rows,
        "consolidation_tables": sorted(rules.consolidation_tables),
        "level_tables": sorted(rules.level_tables),
        "medium_tables": sorted(rules.medium_tables),
    }


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
    context = Context(rules, total_levels, levels)
    return [Classified(c, *_priority(c, context)) for c in changes]


def _priority(c: Change, context: Context) -> tuple[Priority, str]:
    for rule in RULES:
        reason = rule.reason(c, context)
        if reason is not None:
            return rule.priority, reason
    return Priority.LOW, f"single edit ({c.table_name})"
