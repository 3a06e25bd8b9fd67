"""Completeness: a one-row-per-version view has exactly one row per live version."""

from __future__ import annotations

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.db.checks.result import (
    ERROR,
    SAMPLE_IDS,
    HealthResult,
    ident,
    is_populated,
    never_populated,
    plain,
)

COMPLETENESS = "completeness"
VERSIONS_TABLE = "budget_versions"
"""The table whose non-deleted rows are the budget versions every view is keyed by."""


def completeness(conn: psycopg.Connection, view: ManagedView) -> HealthResult:
    """Exactly one row per non-deleted budget version: none missing, none extra, no duplicate.

    Only meaningful for views with ``one_row_per_version``; for the others it passes
    with a note, so a caller may run it on every view.
    """
    if not view.one_row_per_version or not view.version_column:
        return HealthResult(
            COMPLETENESS, view.name, True, ERROR, f"{view.name} is not one row per version", {}
        )
    if not is_populated(conn, view):
        return never_populated(COMPLETENESS, view, ERROR)
    query = sql.SQL(
        """
        WITH expected AS (
            SELECT id FROM {versions} WHERE deleted_at IS NULL
        ), actual AS (
            SELECT {vc} AS id, count(*) AS n FROM {mv} GROUP BY {vc}
        ), missing AS (
            SELECT e.id FROM expected e LEFT JOIN actual a USING (id) WHERE a.id IS NULL
        ), extra AS (
            SELECT a.id FROM actual a LEFT JOIN expected e USING (id) WHERE e.id IS NULL
        ), duplicated AS (
            SELECT id FROM actual WHERE n > 1
        )
        SELECT (SELECT count(*) FROM expected),
               (SELECT coalesce(sum(n), 0) FROM actual),
               (SELECT count(*) FROM missing),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM missing ORDER BY id LIMIT {k}) s),
               (SELECT count(*) FROM extra),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM extra ORDER BY id LIMIT {k}) s),
               (SELECT count(*) FROM duplicated),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM duplicated ORDER BY id LIMIT {k}) s)
        """
    ).format(
        versions=sql.Identifier(SCHEMA, VERSIONS_TABLE),
        vc=sql.Identifier(view.version_column),
        mv=ident(view),
        k=sql.Literal(SAMPLE_IDS),
    )
    expected, rows, n_missing, missing, n_extra, extra, n_dup, dup = conn.execute(query).fetchone()
    passed = n_missing == 0 and n_extra == 0 and n_dup == 0
    if passed:
        description = f"{rows:,} rows for {expected:,} non-deleted versions"
    else:
        problems = []
        if n_missing:
            problems.append(f"{n_missing} version(s) missing (first: {missing[0]})")
        if n_extra:
            problems.append(f"{n_extra} row(s) for deleted or unknown versions (first: {extra[0]})")
        if n_dup:
            problems.append(f"{n_dup} version(s) with several rows (first: {dup[0]})")
        description = (
            f"{view.name} has {rows:,} rows for {expected:,} non-deleted versions: "
            + "; ".join(problems)
            + " (a refresh has not run since, or the view is wrong)"
        )
    return HealthResult(
        COMPLETENESS,
        view.name,
        passed,
        ERROR,
        description,
        {
            "expected_versions": expected,
            "row_count": rows,
            "missing_versions": n_missing,
            "missing_version_ids": plain(missing or []),
            "extra_rows": n_extra,
            "extra_version_ids": plain(extra or []),
            "duplicated_versions": n_dup,
            "duplicated_version_ids": plain(dup or []),
        },
    )
