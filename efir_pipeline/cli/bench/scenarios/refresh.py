"""Refreshes of every managed view: what CONCURRENTLY costs, and what incremental saves.

A ``full`` view's materialized view is ``SELECT * FROM`` its live query, so the SQL
statements are full recomputes: CONCURRENTLY vs plain, with no data changed and after a
one-version change (where a source row is easy to touch). A ``per_version`` view's
materialized view reads the pipeline's cache and recomputes only unsynced versions:
there the SQL statements measure the refresh over the cache (CONCURRENTLY's diff alone),
the full recompute is measured on a scratch copy built the ``full`` way, and the
pipeline's ``refresh_view`` is measured full and incremental.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from efir_pipeline.cli.bench.harness import Bench, engine_settings
from efir_pipeline.cli.bench.measure import Operation, Variant
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA, ManagedView

FULL_REFRESH = "refresh_view(full=True)"
BLOCKS = "ACCESS EXCLUSIVE: blocks readers"

# For "one version changed": one source row per view whose change shows in that view
# (the view's rows for that version differ after the refresh).
TOUCH_SQL: dict[str, str] = {
    "mv_kpi_dashboard": """
        UPDATE efir_budget.revenue_plans SET amount_sar = amount_sar + %(delta)s,
               updated_at = clock_timestamp()
        WHERE id = (SELECT id FROM efir_budget.revenue_plans
                    WHERE budget_version_id = %(version)s AND deleted_at IS NULL
                    ORDER BY account_code LIMIT 1)""",
    "mv_budget_consolidation": """
        UPDATE efir_budget.budget_consolidations SET amount_sar = amount_sar + %(delta)s,
               updated_at = clock_timestamp()
        WHERE id = (SELECT id FROM efir_budget.budget_consolidations
                    WHERE budget_version_id = %(version)s AND deleted_at IS NULL
                    ORDER BY account_code LIMIT 1)""",
    "mv_workforce_utilization": """
        UPDATE efir_budget.dhg_teacher_requirements
           SET total_hours_per_week = total_hours_per_week + %(delta)s,
               updated_at = clock_timestamp()
        WHERE id = (SELECT id FROM efir_budget.dhg_teacher_requirements
                    WHERE budget_version_id = %(version)s AND deleted_at IS NULL
                    ORDER BY subject_id LIMIT 1)""",
    "mv_enrollment_trends": """
        UPDATE efir_budget.enrollment_plans SET student_count = student_count + %(delta)s,
               updated_at = clock_timestamp()
        WHERE id = (SELECT e.id FROM efir_budget.enrollment_plans e
                    JOIN efir_budget.budget_versions v ON v.id = e.budget_version_id
                    WHERE v.status = 'approved' AND v.deleted_at IS NULL
                      AND e.deleted_at IS NULL AND e.student_count > 1
                    ORDER BY v.organization_id = (SELECT organization_id
                                                  FROM efir_budget.budget_versions
                                                  WHERE id = %(version)s) DESC,
                             v.fiscal_year DESC, e.id
                    LIMIT 1)""",
}


@dataclass
class _Sessions:
    bench: Bench
    raw: psycopg.Connection
    cached: psycopg.Connection
    """Over a per_version view's cache, with the session settings the engine uses there."""
    writer: psycopg.Connection

    def statement(
        self, name: str, concurrently: bool, conn: psycopg.Connection | None = None
    ) -> Operation:
        text = sql.SQL("REFRESH MATERIALIZED VIEW {}{}").format(
            sql.SQL("CONCURRENTLY " if concurrently else ""), sql.Identifier(SCHEMA, name)
        )
        on = conn or self.raw
        return lambda _p: on.execute(text)

    def touch(self, view: ManagedView) -> Operation:
        sign = [1]

        def run(version):
            sign[0] = -sign[0]  # +1, -1, +1 ...: the data stays where it was
            self.writer.execute(TOUCH_SQL[view.name], {"delta": sign[0], "version": version})

        return run

    def pipeline(self, view: ManagedView, full: bool) -> Operation:
        return lambda _p: self.bench.refresh(view, full=full)


def measure_refresh(bench: Bench) -> None:
    """Every view: CONCURRENTLY vs plain, no change vs one version changed."""
    sessions = _Sessions(
        bench,
        raw=bench.connect("refresh", statement_timeout="60min", lock_timeout="5min"),
        cached=bench.connect(
            "refresh-cache", statement_timeout="60min", lock_timeout="5min", **engine_settings()
        ),
        writer=bench.connect("writer"),
    )
    for view in catalog.resolve_views():
        kind = bench.relkind(view)
        if view.incremental:
            variants, notes = _per_version_variants(sessions, view, kind)
        else:
            variants, notes = _full_variants(sessions, view, kind)
        for v in variants:
            v.burst = False
        label = f"refresh: {view.name}"
        bench.say(f"{label}: {len(variants)} variants x {bench.options.repeat} rounds")
        bench.interleave(
            f"refresh.{view.name}",
            label,
            variants,
            bench.sample,
            rounds=bench.options.repeat,
            notes=notes,
        )
    # Leave every view exactly in sync with the data (and the refresh history with it).
    for view in catalog.resolve_views():
        bench.refresh(view, full=True)


def _full_variants(
    s: _Sessions, view: ManagedView, kind: str | None
) -> tuple[list[Variant], dict[str, str]]:
    variants: list[Variant] = []
    notes: dict[str, str] = {}
    if kind == "m":
        variants += [
            Variant("CONCURRENTLY, no change", s.statement(view.name, True), baseline=True),
            Variant("plain, no change", s.statement(view.name, False)),
        ]
        notes["plain, no change"] = BLOCKS
        if view.name in TOUCH_SQL:
            variants.append(
                Variant(
                    "CONCURRENTLY, 1 version changed",
                    s.statement(view.name, True),
                    before=s.touch(view),
                )
            )
    variants.append(
        Variant(f"{FULL_REFRESH}, no change", s.pipeline(view, True), baseline=kind != "m")
    )
    return variants, notes


def _per_version_variants(
    s: _Sessions, view: ManagedView, kind: str | None
) -> tuple[list[Variant], dict[str, str]]:
    incremental = "refresh_view(full=False) incremental"
    variants = [
        Variant(f"{FULL_REFRESH}, no change", s.pipeline(view, True), baseline=True),
        Variant(f"{incremental}, no change", s.pipeline(view, False)),
    ]
    if view.name in TOUCH_SQL:
        variants.append(
            Variant(
                f"{incremental}, 1 version changed", s.pipeline(view, False), before=s.touch(view)
            )
        )
    if kind != "m":
        return variants, {}
    copy = _full_copy(s.bench, view)
    plain_copy = "full recompute plain, no change (scratch copy)"
    plain_cache = "SQL plain REFRESH over the cache, no change"
    variants += [
        Variant("full recompute CONCURRENTLY, no change (scratch copy)", s.statement(copy, True)),
        Variant(plain_copy, s.statement(copy, False)),
        Variant(
            "SQL REFRESH CONCURRENTLY over the cache, no change",
            s.statement(view.name, True, s.cached),
        ),
        Variant(plain_cache, s.statement(view.name, False, s.cached)),
    ]
    return variants, {plain_copy: BLOCKS, plain_cache: BLOCKS}


def _full_copy(bench: Bench, view: ManagedView) -> str:
    """A scratch materialized view built the ``full`` way: SELECT * FROM the live query,
    with the same indexes as ``view``; the bench's own object in its own database."""
    name = f"bench_full_{view.name}"
    with psycopg.connect(bench.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE MATERIALIZED VIEW IF NOT EXISTS {} AS SELECT * FROM {}").format(
                sql.Identifier(SCHEMA, name), sql.Identifier(SCHEMA, view.live_view)
            )
        )
        _copy_indexes(conn, view, name)
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(SCHEMA, name)))
    return name


def _copy_indexes(conn: psycopg.Connection, view: ManagedView, name: str) -> None:
    indexes = conn.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %s::regclass""",
        (view.qualified_name,),
    ).fetchall()
    for index, definition in indexes:
        head, _, columns = definition.partition(" USING ")
        unique = "UNIQUE " if head.startswith("CREATE UNIQUE") else ""
        conn.execute(
            sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} USING {}").format(
                sql.SQL(unique),
                sql.Identifier(f"bench_{index}"[:63]),
                sql.Identifier(SCHEMA, name),
                sql.SQL(columns),
            )
        )
