"""Waiting, in tests, until a refresh is blocked where the test put it."""

from __future__ import annotations

import time

import psycopg


def wait_for_blocked_refreshes(url: str, count: int = 1, timeout: float = 10) -> None:
    """Return once ``count`` sessions wait on a lock inside a refresh (or its advisory lock)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as c:
        while time.monotonic() < deadline:
            waiting = c.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND (query LIKE 'REFRESH MATERIALIZED VIEW%%'
                          OR query LIKE 'SELECT pg_advisory_xact_lock%%')"""
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {count} refresh sessions started waiting")
