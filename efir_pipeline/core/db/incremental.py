"""Incremental refresh of ``per_version`` views: what the engine does around the REFRESH.

Migration 0004_views made such a materialized view ``SELECT * FROM v_*_incremental``: the
rows of the live query, read from a cache for the versions without unsynced changes
and computed live for the others (``v_*_dirty``). The REFRESH itself therefore stays
an ordinary ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` (readers never blocked, and
the same statement run by hand is still correct). Inside the refresh transaction the
engine (``efir_pipeline.core.db.refresh``) adds:

1. :func:`prepare`, right before the REFRESH: for a full refresh, forget the synced
   snapshot (everything dirty); then, in one statement, so in one snapshot, take
   ``pg_current_snapshot()`` and the dirty versions;
2. the REFRESH (its own snapshot is later, so it recomputes at least those versions);
3. :func:`sync`, right after it: copy the recomputed versions' rows from the view into
   the cache (all rows when everything was dirty) and record the snapshot of step 1
   as ``synced_snapshot``.

A change committed between steps 1 and 2 is not visible in the recorded snapshot, so
the next refresh recomputes its version again: the rule errs towards one
recomputation too many, never towards a missed change. docs/incremental-refresh.md
has the full argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA, ManagedView

FULL = "full"
INCREMENTAL = "incremental"

SYNC_ALL_ABOVE = 2000
"""Past this many dirty versions the sync compares the whole view with the cache (one
hash join) instead of probing the versions one by one through the key index."""

RECOMPUTE_ALL_FRACTION = 0.1
RECOMPUTE_ALL_MIN = 100
"""Past ``max(RECOMPUTE_ALL_MIN, RECOMPUTE_ALL_FRACTION x live versions)`` dirty versions,
one pass of the whole live query is cheaper than a query per version (about 1 ms each
at network scale, against about 1 s for all 12,000): the refresh recomputes everything."""


@dataclass(frozen=True)
class Scope:
    """What one refresh of a ``per_version`` view recomputes, read right before it."""

    snapshot: str
    """``pg_current_snapshot()`` of the statement that read the dirty versions."""
    versions: tuple[UUID, ...] | None
    """The dirty versions; None: every version (the whole live query)."""
    recomputed: int
    """How many versions the REFRESH computes live (the live versions when all are)."""
    live_versions: int
    """Non-deleted versions, read with the dirty ones."""

    @property
    def everything(self) -> bool:
        return self.versions is None


def prepare(conn: psycopg.Connection, view: ManagedView, *, full: bool) -> Scope:
    """Read (and with ``full``, first reset) what the coming REFRESH recomputes.

    Must run in the refresh transaction, under the view's lock: nobody else writes
    the state or the cache meanwhile, so the scope still holds at the REFRESH.
    """
    if full:
        _set_state(conn, view, None)
    scope = _read_scope(conn, view)
    if not scope.everything and scope.recomputed > max(
        RECOMPUTE_ALL_MIN, RECOMPUTE_ALL_FRACTION * scope.live_versions
    ):
        # Forget the synced snapshot (the REFRESH then runs the whole-query branch); the
        # snapshot read above still bounds what the cache will hold: it is the one recorded.
        _set_state(conn, view, None)
        return Scope(scope.snapshot, None, scope.live_versions, scope.live_versions)
    return scope


def _read_scope(conn: psycopg.Connection, view: ManagedView) -> Scope:
    """The dirty versions and ``pg_current_snapshot()``, in one statement (one snapshot)."""
    snapshot, everything, versions, live_versions = conn.execute(
        sql.SQL(
            """SELECT pg_current_snapshot()::text,
                      coalesce(bool_or(d.{vc} IS NULL), false),
                      coalesce(array_agg(d.{vc}) FILTER (WHERE d.{vc} IS NOT NULL), '{{}}'),
                      (SELECT count(*) FROM {versions} WHERE deleted_at IS NULL)
               FROM {dirty} d"""
        ).format(
            vc=sql.Identifier(view.version_column),
            dirty=sql.Identifier(SCHEMA, view.dirty_view),
            versions=sql.Identifier(SCHEMA, "budget_versions"),
        )
    ).fetchone()
    live_versions = int(live_versions)
    if everything:
        return Scope(snapshot, None, live_versions, live_versions)
    return Scope(snapshot, tuple(versions), len(versions), live_versions)


def sync(conn: psycopg.Connection, view: ManagedView, scope: Scope) -> None:
    """Make the cache hold the view's rows for the recomputed versions, then record
    ``scope.snapshot`` as synced. Run right after the REFRESH, in its transaction.

    Only rows that differ are written (a recomputed version that did not change costs
    a comparison, not an update), and rows of versions the view no longer has go.
    """
    if scope.everything or len(scope.versions) > SYNC_ALL_ABOVE:
        _sync_rows(conn, view, None)
    elif scope.versions:
        _sync_rows(conn, view, list(scope.versions))
    _set_state(conn, view, scope.snapshot)


def _sync_rows(conn: psycopg.Connection, view: ManagedView, versions: list[UUID] | None) -> None:
    cache = sql.Identifier(SCHEMA, view.cache_table)
    mv = sql.Identifier(SCHEMA, view.name)
    vc = sql.Identifier(view.version_column)
    columns = [
        name
        for (name,) in conn.execute(
            """SELECT attname FROM pg_attribute
               WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            (f"{SCHEMA}.{view.cache_table}",),
        ).fetchall()
    ]
    key = list(view.unique_key)

    def join(left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(
                sql.Identifier(left), sql.Identifier(k), sql.Identifier(right), sql.Identifier(k)
            )
            for k in key
        )

    def scope(alias: str) -> sql.Composable:
        if versions is None:
            return sql.SQL("true")
        return sql.SQL("{}.{} = ANY(%(versions)s)").format(sql.Identifier(alias), vc)

    params = {"versions": versions}
    conn.execute(
        sql.SQL(
            "DELETE FROM {cache} c WHERE {scope} AND NOT EXISTS (SELECT FROM {mv} m WHERE {join})"
        ).format(cache=cache, mv=mv, scope=scope("c"), join=join("m", "c")),
        params,
    )
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    conn.execute(
        sql.SQL(
            """INSERT INTO {cache} AS c ({cols})
               SELECT {m_cols} FROM {mv} m LEFT JOIN {cache} o ON {join_o}
               WHERE {scope}
                 AND (o.{k0} IS NULL OR ROW({o_cols}) IS DISTINCT FROM ROW({m_cols}))
               ON CONFLICT ({key}) DO UPDATE SET {updates}"""
        ).format(
            cache=cache,
            cols=cols,
            mv=mv,
            m_cols=sql.SQL(", ").join(sql.Identifier("m", c) for c in columns),
            o_cols=sql.SQL(", ").join(sql.Identifier("o", c) for c in columns),
            join_o=join("o", "m"),
            scope=scope("m"),
            k0=sql.Identifier(key[0]),
            key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
            updates=sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in columns
                if c not in key
            ),
        ),
        params,
    )


def _set_state(conn: psycopg.Connection, view: ManagedView, snapshot: str | None) -> None:
    """Record ``snapshot`` as synced (None: forget it, so everything is dirty)."""
    conn.execute(
        """INSERT INTO efir_budget.incremental_state
               (view_name, synced_snapshot, synced_origin, synced_at)
           VALUES (%(view)s, %(snapshot)s::pg_snapshot,
                   CASE WHEN %(snapshot)s::text IS NOT NULL THEN efir_budget.cluster_id() END,
                   CASE WHEN %(snapshot)s::text IS NOT NULL THEN clock_timestamp() END)
           ON CONFLICT (view_name) DO UPDATE
               SET synced_snapshot = EXCLUDED.synced_snapshot,
                   synced_origin = EXCLUDED.synced_origin,
                   synced_at = coalesce(EXCLUDED.synced_at, incremental_state.synced_at)""",
        {"view": view.name, "snapshot": snapshot},
    )


def state(conn: psycopg.Connection, view: ManagedView) -> dict | None:
    """The view's row of ``incremental_state`` (None: not an incremental view)."""
    row = conn.execute(
        """SELECT synced_snapshot::text, synced_at
           FROM efir_budget.incremental_state WHERE view_name = %s""",
        (view.name,),
    ).fetchone()
    if row is None:
        return None
    return {"synced_snapshot": row[0], "synced_at": row[1]}
