"""The refresh engine: one materialized view, refreshed safely, recorded once.

Guarantees:

- readers are never blocked: CONCURRENTLY, except when the view was never populated;
- no two refreshes of one view at once: the view's row of ``efir_budget.refresh_state``
  is locked for the whole refresh (only the pipeline may lock it: a reader cannot stall
  refreshes, as it could any advisory lock key);
- a caller that arrives during a refresh waits for it and then refreshes once more,
  unless a refresh that *started after its request* has already succeeded: then its
  changes are reflected and it records ``coalesced`` instead of stacking a duplicate.
  "Started after" is read from the view's refresh counter, never from a clock: two
  successes after the request was made mean the second one started after it;
- nothing waits forever: ``lock_timeout`` and ``statement_timeout`` are set locally;
- a failure rolls back (PostgreSQL keeps the previous contents) and is recorded, on a
  new connection when the refresh's own was lost;
- every session runs with ``search_path = pg_catalog, pg_temp`` (see connection.py).

The success row in ``mv_refresh_log`` commits in the same transaction as the refresh,
so the history can never claim a refresh that did not happen.

Views of catalog strategy ``per_version`` are refreshed by the same
``REFRESH ... CONCURRENTLY``; their defining query recomputes only the versions with
changes the cache has not synced, and the engine syncs the cache in the same
transaction (``efir_pipeline.core.db.incremental``). ``full=True`` (the nightly schedule,
``efir-pipeline refresh --full``) forgets the synced state first, so every version is
recomputed and the whole cache rewritten. The history records ``mode`` (full or
incremental) and ``versions_recomputed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors, sql

from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.db import incremental
from efir_pipeline.core.db.connection import connect
from efir_pipeline.core.db.migrate import require_current
from efir_pipeline.core.db.refresh_terms import (
    RefreshResult,
    RefreshSettings,
    describe_failure,
    is_transient,
)
from efir_pipeline.core.errors import EfirError
from efir_pipeline.core.settings import current as current_settings
from efir_pipeline.core.values import Duration

log = logging.getLogger(__name__)

_GENERATIONS = (
    "SELECT generation, full_generation FROM efir_budget.refresh_state WHERE view_name = %s"
)
TURN = _GENERATIONS + " FOR UPDATE"
"""Taking a view's turn: its refresh_state row's lock (the statement tests wait on)."""

# Session settings (transaction-local) of a per_version refresh. jit: the scope holds the
# whole live query in a branch that an incremental refresh does not run, and its cost
# would make PostgreSQL JIT-compile (~0.12 s at network scale) what runs in 20 ms. Statistics
# target and work_mem: REFRESH ... CONCURRENTLY ANALYZEs its temporary copy of the new
# rows and sorts it to look for duplicates; at the default target that ANALYZE is more
# than half of an incremental refresh, and at 4MB the sort spills to disk. The target
# only affects that temporary table (nothing else is analyzed in the transaction).
INCREMENTAL_SETTINGS = {"jit": "off", "default_statistics_target": "1"}
INCREMENTAL_WORK_MEM = "64MB"
"""Raised to this for the refresh's transaction when the server's work_mem is lower."""


@dataclass
class _Attempt:
    """What one refresh attempt has learnt so far (for its history row, whatever happens)."""

    view: ManagedView
    trigger: str
    run_id: str | None
    full: bool
    requested_at: datetime
    started: float
    generations: tuple[int, int]
    """The view's (generation, full_generation) when the request was made."""
    waiting: bool = True
    """Still waiting for the view's turn (a failure then is the wait's, not the refresh's)."""
    wait_seconds: float = 0.0
    duration: float = 0.0
    t0: float | None = None
    concurrently: bool | None = None


def refresh_view(
    view: ManagedView,
    *,
    url: str | None = None,
    settings: RefreshSettings | None = None,
    wait: bool = True,
    trigger: str = "manual",
    run_id: str | None = None,
    full: bool = False,
) -> RefreshResult:
    """Refresh one catalog view on a connection of its own and record the attempt.

    ``full``: recompute every row even for a ``per_version`` view (and rewrite its
    cache); a full request is coalesced only into a full refresh. Views of strategy
    ``full`` recompute everything anyway.

    Never raises for a failed refresh: the result says ``failed`` (with ``transient``
    set for errors worth retrying). Only an unreachable database, or one not at the
    current schema revision, raises.
    """
    settings = settings or RefreshSettings.from_settings(current_settings())
    # Autocommit, so each ``conn.transaction()`` below is a real transaction, not a savepoint.
    with connect(url, autocommit=True) as conn:
        require_current(conn)
        return _refresh(
            conn, view, settings, wait=wait, trigger=trigger, run_id=run_id, full=full, url=url
        )


def _refresh(
    conn: psycopg.Connection,
    view: ManagedView,
    settings: RefreshSettings,
    *,
    wait: bool,
    trigger: str,
    run_id: str | None,
    full: bool = False,
    url: str | None = None,
) -> RefreshResult:
    requested_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    generations = _generations(conn, view)
    attempt = _Attempt(view, trigger, run_id, full, requested_at, time.monotonic(), generations)
    try:
        with conn.transaction():
            now = _wait_for_turn(conn, attempt, settings, wait=wait)
            _set_timeouts(conn, settings.lock_timeout, settings.statement_timeout)
            if _served_since_request(attempt, now):
                raise _Coalesced
            result = _refresh_and_record(conn, attempt)
        log.info(
            "refreshed %s in %.3fs (%s rows, %s, %s versions recomputed)",
            view.name, result.duration_seconds, result.row_count, result.mode,
            result.versions_recomputed,
        )  # fmt: skip
        return result
    except (_Busy, _Coalesced) as marker:
        outcome = "skipped" if isinstance(marker, _Busy) else "coalesced"
        error = "another refresh of this view is running" if outcome == "skipped" else None
        return _record_outside(conn, attempt, outcome, error, transient=False, url=url)
    except psycopg.Error as exc:
        if attempt.waiting:
            attempt.wait_seconds = time.monotonic() - attempt.started
        elif attempt.t0 is not None and not attempt.duration:
            attempt.duration = time.monotonic() - attempt.t0
        # Waiting ran out: the other refresh will end. Refused its turn: it won't help.
        waited_out = attempt.waiting and isinstance(
            exc, errors.LockNotAvailable | errors.QueryCanceled
        )
        transient = is_transient(exc) or waited_out
        message = describe_failure(exc, settings, waiting=attempt.waiting)
        log.warning("refresh of %s failed: %s", view.name, message)
        return _record_outside(conn, attempt, "failed", message, transient=transient, url=url)


def _set_timeouts(conn: psycopg.Connection, lock: Duration, statement: Duration) -> None:
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock.postgres(),))
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (statement.postgres(),))


def _generations(conn: psycopg.Connection, view: ManagedView) -> tuple[int, int]:
    row = conn.execute(_GENERATIONS, (view.name,)).fetchone()
    if row is None:
        raise EfirError(
            f"{view.name} has no row in efir_budget.refresh_state: the database does not have "
            "this view's migration (run `efir-pipeline db upgrade`)"
        )
    return row


def _wait_for_turn(
    conn: psycopg.Connection, attempt: _Attempt, settings: RefreshSettings, *, wait: bool
) -> tuple[int, int]:
    """Take the view's turn (its refresh_state row lock), or raise _Busy; return its
    counters as they are now.

    Waiting is bounded by the wait timeout alone (a role's own statement_timeout must
    not cut it short and pass for a refresh timeout).
    """
    _set_timeouts(conn, settings.wait_timeout, settings.wait_timeout)
    try:
        now = conn.execute(TURN + ("" if wait else " NOWAIT"), (attempt.view.name,)).fetchone()
    except errors.LockNotAvailable:
        if wait:
            raise
        raise _Busy from None
    attempt.wait_seconds = time.monotonic() - attempt.started
    attempt.waiting = False
    return now


def _served_since_request(attempt: _Attempt, now: tuple[int, int]) -> bool:
    """Whether a refresh that started after the request has succeeded since.

    Two successes since the request: the second took its turn after the first ended,
    hence after the request. One may have been running already when the request came:
    it may not have seen the request's changes. A full request needs full refreshes.
    """
    (generation, full_generation), (before, full_before) = now, attempt.generations
    if attempt.full:
        return full_generation >= full_before + 2
    return generation >= before + 2


def _refresh_and_record(conn: psycopg.Connection, attempt: _Attempt) -> RefreshResult:
    """REFRESH (incremental bookkeeping around it) and the success row, in the caller's
    transaction: the history can never claim a refresh that did not commit."""
    view = attempt.view
    ident = sql.Identifier(SCHEMA, view.name)
    populated = conn.execute(
        "SELECT relispopulated FROM pg_class WHERE oid = %s::regclass", (view.qualified_name,)
    ).fetchone()[0]
    attempt.concurrently = bool(populated)
    statement = sql.SQL("REFRESH MATERIALIZED VIEW {}{}").format(
        sql.SQL("CONCURRENTLY " if attempt.concurrently else ""), ident
    )
    snapshot_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    reflected = _reflection_point(conn, view)
    scope = None
    if view.incremental and _may_refresh(conn, view):
        _incremental_settings(conn)
        scope = incremental.prepare(conn, view, full=attempt.full)
    # The event trigger that records REFRESHes run outside the engine: not this one.
    conn.execute("SELECT set_config('efir.engine_refresh', 'on', true)")
    attempt.t0 = time.monotonic()
    conn.execute(statement)
    attempt.duration = time.monotonic() - attempt.t0
    row_count, size_bytes = conn.execute(
        sql.SQL("SELECT (SELECT count(*) FROM {}), pg_total_relation_size({}::regclass)").format(
            ident, sql.Literal(view.qualified_name)
        )
    ).fetchone()
    if scope is not None:
        incremental.sync(conn, view, scope)
    mode = incremental.FULL if scope is None or attempt.full else incremental.INCREMENTAL
    recomputed = scope.recomputed if scope is not None else None
    conn.execute(
        """UPDATE efir_budget.refresh_state
           SET generation = generation + 1,
               full_generation = full_generation + CASE WHEN %s THEN 1 ELSE 0 END
           WHERE view_name = %s""",
        (mode == incremental.FULL, view.name),
    )
    log_id, finished_at = _record(
        conn, view, outcome="success", trigger=attempt.trigger, run_id=attempt.run_id,
        requested_at=attempt.requested_at, snapshot_at=snapshot_at,
        wait_seconds=attempt.wait_seconds, duration_seconds=attempt.duration,
        ran_concurrently=attempt.concurrently, row_count=row_count, size_bytes=size_bytes,
        mode=mode, versions_recomputed=recomputed, **reflected,
    )  # fmt: skip
    return RefreshResult(
        view.name, "success", log_id, attempt.requested_at, snapshot_at, finished_at,
        attempt.wait_seconds, attempt.duration, attempt.concurrently, row_count, size_bytes,
        mode=mode, versions_recomputed=recomputed,
    )  # fmt: skip


class _Busy(Exception):
    """Another session holds the view's lock and the caller chose not to wait."""


class _Coalesced(Exception):
    """A refresh that started after this request has already succeeded."""


def _reflection_point(conn: psycopg.Connection, view: ManagedView) -> dict:
    """What this refresh will reflect (``efir_budget.reflection_point``).

    Taken in its own statement right before REFRESH, whose snapshot is taken later and
    so sees at least as much: a change whose transaction is visible here is reflected.
    For a view reading other managed views the function returns the earliest of this
    snapshot and theirs (NULL when one was never refreshed: nothing is claimed).
    """
    snapshot, origin, max_id = conn.execute(
        "SELECT reflected_snapshot::text, snapshot_origin, reflected_change_id "
        "FROM efir_budget.reflection_point(%s)",
        (view.name,),
    ).fetchone()
    return {
        "reflected_snapshot": snapshot,
        "snapshot_origin": origin,
        "reflected_change_id": max_id,
    }


def _may_refresh(conn: psycopg.Connection, view: ManagedView) -> bool:
    """Whether the current role may REFRESH the view (owner, or MAINTAIN from PostgreSQL 17).

    A role that may not goes straight to the REFRESH, so it fails with PostgreSQL's own
    "must be owner" rather than on the incremental bookkeeping read before it.
    """
    owner = conn.execute(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
        (view.qualified_name,),
    ).fetchone()[0]
    if owner or conn.info.server_version < 170000:
        return bool(owner)
    return conn.execute(
        "SELECT has_table_privilege(%s::regclass, 'MAINTAIN')", (view.qualified_name,)
    ).fetchone()[0]


def _incremental_settings(conn: psycopg.Connection) -> None:
    for name, value in INCREMENTAL_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    conn.execute(
        """SELECT set_config('work_mem', %(v)s, true)
           WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%(v)s)""",
        {"v": INCREMENTAL_WORK_MEM},
    )


def _record(conn: psycopg.Connection, view: ManagedView, **fields) -> tuple[int, datetime]:
    fields.setdefault("error", None)
    columns = ["view_name", *fields]
    query = sql.SQL(
        "INSERT INTO efir_budget.mv_refresh_log ({}, finished_at) VALUES ({}, clock_timestamp()) "
        "RETURNING id, finished_at"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    return conn.execute(query, [view.name, *fields.values()]).fetchone()


def _record_outside(
    conn: psycopg.Connection,
    attempt: _Attempt,
    outcome: str,
    error: str | None,
    *,
    transient: bool,
    url: str | None = None,
) -> RefreshResult:
    """Record an attempt that did not refresh, after the refresh transaction rolled back.

    When the refresh's connection is gone (its backend terminated, the server restarted),
    the failure is recorded on a new one: the history has a row for every attempt.
    """
    fields = dict(
        outcome=outcome, trigger=attempt.trigger, run_id=attempt.run_id,
        requested_at=attempt.requested_at, wait_seconds=attempt.wait_seconds,
        duration_seconds=attempt.duration, ran_concurrently=attempt.concurrently, error=error,
    )  # fmt: skip
    log_id = finished_at = None
    try:
        if conn.broken or conn.closed:
            with connect(url, autocommit=True) as fresh, fresh.transaction():
                log_id, finished_at = _record(fresh, attempt.view, **fields)
        else:
            with conn.transaction():
                log_id, finished_at = _record(conn, attempt.view, **fields)
    except (psycopg.Error, EfirError) as exc:  # the database itself is gone: say so, keep the error
        log.error("could not record the %s refresh of %s: %s", outcome, attempt.view.name, exc)
    return RefreshResult(
        attempt.view.name, outcome, log_id, attempt.requested_at, None, finished_at,
        attempt.wait_seconds, attempt.duration, attempt.concurrently, None, None, error,
        transient,
    )  # fmt: skip
