"""Freshness: how long the oldest change a view does not reflect has waited.

Each pending change is judged against the deadline its priority promises (the
sensors' own rules, ``efir_pipeline.core.rules``), so a status change 10 minutes old
is late and a single edit 10 hours old is not. The worst priority decides: WARN past
its limit, ERROR past twice. Ages use the database clock, the one ``changed_at``
comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db import changes
from efir_pipeline.core.db.checks.result import (
    ERROR,
    PRIORITIES,
    WARN,
    HealthResult,
    Thresholds,
    is_populated,
    last_success,
    never_populated,
    plain,
    when,
)
from efir_pipeline.core.rules import Classified
from efir_pipeline.core.values import human_duration

FRESHNESS = "freshness"


@dataclass(frozen=True)
class Pending:
    """The changes of one priority a view does not reflect yet."""

    priority: str
    count: int
    oldest: Classified
    age_seconds: float
    limit_seconds: float

    @property
    def ratio(self) -> float:
        return self.age_seconds / self.limit_seconds if self.limit_seconds else float("inf")

    def summary(self) -> dict[str, Any]:
        return {
            "pending_changes": self.count,
            "oldest_change_at": self.oldest.change.changed_at,
            "lag_seconds": round(self.age_seconds, 1),
            "limit_seconds": self.limit_seconds,
        }


def freshness(conn: psycopg.Connection, view: ManagedView, thresholds: Thresholds) -> HealthResult:
    """Per priority, the oldest change the view does not reflect against that priority's limit."""
    if not is_populated(conn, view):
        return never_populated(FRESHNESS, view, ERROR)
    now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    last = last_success(conn, view)
    data_as_of = last["snapshot_at"] if last else None
    pending = pending_by_priority(conn, view, thresholds, now)
    metadata: dict[str, Any] = {
        "data_as_of": data_as_of,
        "limits_seconds": dict(thresholds.freshness_limits),
        "lag_seconds": max((round(p.age_seconds, 1) for p in pending), default=0.0),
        "pending_changes": sum(p.count for p in pending),
        "by_priority": {p.priority: p.summary() for p in pending},
    }
    if not pending:
        return HealthResult(
            FRESHNESS, view.name, True, WARN,
            f"{view.name} reflects every logged change (data as of {when(data_as_of)})",
            metadata,
        )  # fmt: skip
    worst = max(pending, key=lambda p: p.ratio)
    metadata["oldest_pending_change"] = _change_metadata(worst)
    return HealthResult(
        FRESHNESS,
        view.name,
        worst.ratio <= 1,
        ERROR if worst.ratio > 2 else WARN,
        f"oldest pending {worst.priority}-priority change is "
        f"{human_duration(round(worst.age_seconds, 1))} old, {_verdict(worst)} "
        f"({metadata['pending_changes']} change(s) pending; data as of {when(data_as_of)})",
        metadata,
    )


def pending_by_priority(
    conn: psycopg.Connection, view: ManagedView, thresholds: Thresholds, now: datetime
) -> list[Pending]:
    """The unreflected changes of ``view``, classified, per priority (catalog order)."""
    groups: dict[str, list[Classified]] = {}
    for item in changes.classified_unreflected(conn, view, thresholds.rules):
        groups.setdefault(str(item.priority), []).append(item)
    out = []
    for priority in PRIORITIES:
        items = groups.get(priority)
        if not items:
            continue
        oldest = min(items, key=lambda c: (c.change.changed_at, c.change.id))
        age = max((now - oldest.change.changed_at).total_seconds(), 0.0)
        out.append(
            Pending(priority, len(items), oldest, age, thresholds.freshness_limits[priority])
        )
    return out


def _verdict(p: Pending) -> str:
    limit = human_duration(p.limit_seconds)
    if p.ratio <= 1:
        return f"within the {limit} limit"
    return f"over the {limit} limit" + (" twice over" if p.ratio > 2 else "")


def _change_metadata(p: Pending) -> dict:
    c = p.oldest.change
    return plain(
        {
            "priority": p.priority,
            "changed_at": c.changed_at,
            "age_seconds": round(p.age_seconds, 1),
            "change_id": c.id,
            "table_name": c.table_name,
            "budget_version_id": c.budget_version_id,
            "operation": c.operation,
            "rows_affected": c.rows_affected,
            "reason": p.oldest.reason,
        }
    )
