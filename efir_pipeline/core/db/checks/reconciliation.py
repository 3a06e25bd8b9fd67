"""Reconciliation: sampled versions of the view equal the live defining query.

Both sides are read in one statement (one snapshot of the source tables), joined on
the unique key and compared column by column, so a difference names the version,
the column and both values, and says whether a logged change explains it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.db import changes
from efir_pipeline.core.db.checks.completeness import VERSIONS_TABLE
from efir_pipeline.core.db.checks.result import (
    ERROR,
    SAMPLE_IDS,
    HealthResult,
    Thresholds,
    ident,
    is_populated,
    last_success,
    never_populated,
    plain,
    view_columns,
)

RECONCILIATION = "reconciliation"
MAX_DIFF_ROWS = 1000
"""Differing rows fetched (the total is counted in full)."""


def sample_versions(
    conn: psycopg.Connection, view: ManagedView, size: int, seed: str
) -> tuple[list[Any], int]:
    """A deterministic sample of versions, and how many there were to choose from.

    Candidates are the versions in the view *and* the non-deleted versions in the
    source, so a row that should have appeared and one that should have gone are
    both caught. ``md5(id || seed)`` orders them: the same seed gives the same sample.
    """
    vc = sql.Identifier(view.version_column)
    candidates = sql.SQL(
        "SELECT {vc} AS v FROM {mv} UNION SELECT id FROM {versions} WHERE deleted_at IS NULL"
    ).format(vc=vc, mv=ident(view), versions=sql.Identifier(SCHEMA, VERSIONS_TABLE))
    rows = conn.execute(
        sql.SQL(
            """SELECT v, count(*) OVER () FROM ({candidates}) c
               ORDER BY md5(v::text || %(seed)s), v LIMIT %(n)s"""
        ).format(candidates=candidates),
        {"seed": seed, "n": size},
    ).fetchall()
    return [v for v, _ in rows], (rows[0][1] if rows else 0)


def reconciliation(
    conn: psycopg.Connection, view: ManagedView, thresholds: Thresholds
) -> HealthResult:
    """The materialized rows of sampled versions equal the live defining query's.

    A difference means the view does not hold what its query returns now: a change
    the view has not reflected yet (the metadata says whether change capture logged
    one for that version since the refresh) or, when nothing explains it, a write
    path that skipped change capture or a wrong view.
    """
    if not is_populated(conn, view):
        return never_populated(RECONCILIATION, view, ERROR)
    last = last_success(conn, view)
    seed = thresholds.sample_seed or str(last["id"] if last else 0)
    metadata: dict[str, Any] = {"seed": seed}
    view_rows, live_rows, params = _scope(conn, view, thresholds.sample_size, seed, metadata)
    columns = view_columns(conn, view)
    query = _comparison(view, columns, view_rows, live_rows)
    # One statement: both sides see one snapshot of the source tables. JIT off: the
    # planner's row estimates for the per-version lateral are absurdly high, and
    # compiling for them costs a second where running takes milliseconds.
    with conn.transaction():
        conn.execute("SELECT set_config('jit', 'off', true)")
        n_view, n_live, n_diff, n_diff_versions, diff_json = conn.execute(query, params).fetchone()
    metadata.update(view_rows=n_view, live_rows=n_live, differing_rows=n_diff)
    if not n_diff:
        scope = (
            f"{metadata['sample_size']} sampled version(s) of {metadata['candidate_versions']}"
            if view.version_column
            else "all rows"
        )
        return HealthResult(
            RECONCILIATION, view.name, True, ERROR,
            f"{n_view:,} rows of {scope} equal the live query {view.live_view}", metadata,
        )  # fmt: skip
    diffs = json.loads(diff_json, parse_float=Decimal)
    return _difference(conn, view, columns, diffs, n_diff, n_diff_versions, metadata)


def _scope(
    conn: psycopg.Connection, view: ManagedView, size: int, seed: str, metadata: dict
) -> tuple[sql.Composable, sql.Composable, dict[str, Any]]:
    """The view's rows and the live query's rows to compare: a sample of versions, or all."""
    if not view.version_column:
        metadata.update(sample_size=None, candidate_versions=None)
        live = sql.Identifier(SCHEMA, view.live_view)
        return (
            sql.SQL("SELECT * FROM {}").format(ident(view)),
            sql.SQL("SELECT * FROM {}").format(live),
            {},
        )
    sample, candidates = sample_versions(conn, view, size, seed)
    metadata.update(
        sample_size=len(sample), candidate_versions=candidates, sampled_versions=plain(sample[:50])
    )
    vc = sql.Identifier(view.version_column)
    view_rows = sql.SQL("SELECT * FROM {} WHERE {} = ANY(%(sample)s)").format(ident(view), vc)
    # One version at a time (OFFSET 0 keeps the subquery apart): the equality reaches
    # each per-table aggregate of the live query, which a list of versions does not.
    live_rows = sql.SQL(
        "SELECT x.* FROM unnest(%(sample)s) AS s(version) "
        "CROSS JOIN LATERAL (SELECT * FROM {} WHERE {} = s.version OFFSET 0) x"
    ).format(sql.Identifier(SCHEMA, view.live_view), vc)
    return view_rows, live_rows, {"sample": sample}


def _comparison(
    view: ManagedView,
    columns: list[str],
    view_rows: sql.Composable,
    live_rows: sql.Composable,
) -> sql.Composed:
    """Both sides joined on the unique key; every differing row with its columns named."""
    key = list(view.unique_key)

    def col(alias: str, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))

    def listed(alias: str, names: list[str]) -> sql.Composed:
        return sql.SQL(", ").join(col(alias, c) for c in names)

    differing = sql.SQL(", ").join(
        sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
            col("m", c), col("l", c), sql.Literal(c)
        )
        for c in columns
    )
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in key)
    return sql.SQL(
        """
        WITH m AS MATERIALIZED ({view_rows}),
             l AS MATERIALIZED ({live_rows}),
             d AS (
                SELECT {key_values},
                       {m_key} IS NULL AS missing_in_view,
                       {l_key} IS NULL AS missing_in_live,
                       array_remove(ARRAY[{differing}]::text[], NULL) AS columns,
                       to_jsonb(m) AS view_row,
                       to_jsonb(l) AS live_row
                FROM m FULL JOIN l ON {join}
                WHERE {m_key} IS NULL OR {l_key} IS NULL OR ROW({m_all}) IS DISTINCT FROM ROW({l_all})
             )
        SELECT (SELECT count(*) FROM m),
               (SELECT count(*) FROM l),
               (SELECT count(*) FROM d),
               (SELECT count(DISTINCT {first_key}) FROM d),
               (SELECT json_agg(x ORDER BY {keys})::text
                  FROM (SELECT * FROM d ORDER BY {keys} LIMIT {max_rows}) x)
        """
    ).format(
        view_rows=view_rows,
        live_rows=live_rows,
        key_values=sql.SQL(", ").join(
            sql.SQL("coalesce({}, {}) AS {}").format(col("m", k), col("l", k), sql.Identifier(k))
            for k in key
        ),
        m_key=col("m", key[0]),
        l_key=col("l", key[0]),
        differing=differing,
        join=sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(col("m", k), col("l", k)) for k in key
        ),
        m_all=listed("m", columns),
        l_all=listed("l", columns),
        first_key=sql.Identifier(view.version_column or key[0]),
        keys=keys,
        max_rows=sql.Literal(MAX_DIFF_ROWS),
    )


def _difference(
    conn: psycopg.Connection,
    view: ManagedView,
    columns: list[str],
    diffs: list[dict[str, Any]],
    n_diff: int,
    n_diff_versions: int,
    metadata: dict[str, Any],
) -> HealthResult:
    """The failed result: the first difference, and whether logged changes explain them."""
    first = describe_difference(diffs[0], view, columns)
    vc = view.version_column or view.unique_key[0]
    versions = list(dict.fromkeys(d[vc] for d in diffs))
    pending = changed_versions_since(conn, view, versions)
    metadata.update(
        differing_versions=n_diff_versions,
        differing_version_ids=versions[:SAMPLE_IDS],
        first_difference=first,
        versions_with_changes_since_refresh=[v for v in versions if v in pending][:SAMPLE_IDS],
    )
    cause = (
        "change capture logged a write to each of them since the refresh: refresh the view"
        if all(v in pending for v in versions)
        else "no logged change explains it: a write that skipped change capture, or a wrong view"
    )
    where = f"{vc} {first[vc]}" if vc in first else f"key {first['key']}"
    return HealthResult(
        RECONCILIATION,
        view.name,
        False,
        ERROR,
        f"{n_diff} row(s) in {n_diff_versions} version(s) differ from the live query; first: "
        f"{where}, column {first['column']}: view {first['view_value']!r} vs live "
        f"{first['live_value']!r} ({cause})",
        metadata,
    )


def describe_difference(diff: dict[str, Any], view: ManagedView, columns: list[str]) -> dict:
    """The first differing column of one row, with both values as text."""
    key = {k: diff[k] for k in view.unique_key}
    if diff["missing_in_view"]:
        column, view_value, live_value = "(row)", None, "present"
    elif diff["missing_in_live"]:
        column, view_value, live_value = "(row)", "present", None
    else:
        column = diff["columns"][0]
        view_value = _text(diff["view_row"].get(column))
        live_value = _text(diff["live_row"].get(column))
    out = {**{k: str(v) for k, v in key.items()}, "column": column}
    out.update(
        key=", ".join(f"{k}={v}" for k, v in key.items()),
        view_value=view_value,
        live_value=live_value,
        differing_columns=diff["columns"]
        if not (diff["missing_in_view"] or diff["missing_in_live"])
        else [],
        missing_in_view=diff["missing_in_view"],
        missing_in_live=diff["missing_in_live"],
    )
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def changed_versions_since(
    conn: psycopg.Connection, view: ManagedView, versions: Sequence[Any]
) -> set[str]:
    """Which of ``versions`` have a logged change the view does not reflect yet.

    A change to a table without versions (reference data) concerns every version.
    """
    changed = {c.budget_version_id for c in changes.unreflected_changes(conn, view)}
    wanted = {str(v) for v in versions}
    if None in changed:
        return wanted
    return {str(v) for v in changed} & wanted
