"""Waiting, in tests, until a refresh is blocked where the test put it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from efir_pipeline.core.db.refresh import TURN


def wait_for_blocked_refreshes(url: str, count: int = 1, timeout: float = 10) -> None:
    """Return once ``count`` sessions wait on a lock inside a refresh (or for their turn)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as c:
        while time.monotonic() < deadline:
            waiting = c.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND (query LIKE 'REFRESH MATERIALIZED VIEW%%'
                          OR query LIKE %s)""",
                (TURN.split(" WHERE ")[0] + "%",),
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {count} refresh sessions started waiting")


@contextmanager
def turn_held(url: str, view: str) -> Iterator[None]:
    """Hold a view's turn (its refresh_state row lock), as a refresh in progress does."""
    with psycopg.connect(url) as holder:
        holder.execute(
            "SELECT 1 FROM efir_budget.refresh_state WHERE view_name = %s FOR UPDATE", (view,)
        )
        try:
            yield
        finally:
            holder.rollback()
