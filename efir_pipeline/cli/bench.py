"""``efir-pipeline bench``: the figures behind "the dashboard answers in milliseconds".

It creates a scratch database of its own on the configured server (DATABASE_URL's,
else the embedded one), migrates it, loads demo data at the requested scale, measures,
prints ONE table and the target verdicts, writes the same as JSON, and drops the
database again (also on Ctrl-C or an error) unless ``--keep``.

What is measured, side by side in the same run (compared variants are interleaved
inside one loop, A B B A A B ..., so machine noise and cache drift hit both alike):

- ``read.*``: dashboard reads from the materialized view vs the live defining query
  (``v_*``, with the server's JIT setting and with ``jit = off``): one version's KPI
  row, one fiscal year's list across all schools, one version's consolidation.
- ``refresh.<view>``: every managed view, ``REFRESH ... CONCURRENTLY`` vs plain, with
  no data changed (and CONCURRENTLY after a one-version change, where a source row is
  easy to touch), plus the pipeline's own ``refresh_view`` (full, and incremental when
  the refresh engine has a ``full`` parameter). A ``per_version`` view's full recompute
  is measured on a scratch copy built the ``full`` way (its own view reads a cache).
- ``readers_during_refresh``: reader threads loop over the one-version query with
  ``lock_timeout = 100ms`` while the main thread runs full refreshes of
  mv_kpi_dashboard; each read is classed as idle or during-refresh by its timestamps.
  A lock wait shows up as a lock_timeout error and in pg_stat_activity (sampled).
  A plain REFRESH follows, for contrast: it is what CONCURRENTLY avoids.
- ``change_to_visible``: one revenue row of one version is updated and committed;
  a poller reads the dashboard row until it shows the new figure. Full vs incremental.
- ``concurrent_readers``: N readers (a connection each), closed loop, bounded in time:
  throughput and latency, vs one reader; and the same from pgbench when installed (a C
  client, to tell the server's limits from the Python client's).

Only psycopg 3 and the standard library are used (threads and a list of connections:
no pool package needed); pgbench is optional. docs/performance.md has the results at
network scale and what limits each number.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql

from efir_pipeline.cli import demo_data
from efir_pipeline.cli.output import render
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.errors import EfirError

SCENARIOS = ("reads", "refresh", "readers", "visible", "concurrency")
KPI_VIEW = "mv_kpi_dashboard"
CONSOLIDATION_VIEW = "mv_budget_consolidation"
READER_APP = "efir-bench-reader"
READER_LOCK_TIMEOUT = "100ms"
# A fast variant runs several times per round (within this budget) so it gets enough
# samples for a p95 while a slow one runs once; the order still alternates each round.
BURST_BUDGET_S = 0.05
MAX_BURST = 20
POLL_SLEEP_S = 0.001

# For "REFRESH CONCURRENTLY, one version changed": one source row per view whose change
# shows in that view (the view's rows for that version differ after the refresh).
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


class BenchError(EfirError):
    """The benchmark could not run (a refresh failed, bad options...)."""


# --------------------------------------------------------------------------------------
# Options, results, statistics
# --------------------------------------------------------------------------------------


@dataclass
class BenchOptions:
    orgs: int = demo_data.SCALES["network"][0]
    versions_per_org: int | None = demo_data.SCALES["network"][1]
    seed: int = 42
    repeat: int = 10
    """Rounds of every interleaved comparison (fast variants run a burst per round)."""
    readers: int = 50
    """Concurrent readers of the throughput scenario."""
    duration: float = 10.0
    """Seconds the concurrent readers run (split between N readers and one reader)."""
    refresh_readers: int = 4
    """Reader threads during the refresh scenario."""
    think_ms: float = 5.0
    """Pause of each reader between two queries during the refresh scenario."""
    scenarios: tuple[str, ...] = SCENARIOS
    json_path: str | None = "bench-results.json"
    keep: bool = False
    command: str | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


@dataclass
class Measurement:
    scenario: str
    """Stable key, e.g. ``read.one_version`` or ``refresh.mv_kpi_dashboard``."""
    label: str
    variant: str
    samples_ms: list[float] = field(default_factory=list)
    baseline: bool = False
    notes: str = ""
    extra: dict = field(default_factory=dict)
    available: bool = True

    def summary(self) -> dict:
        s = self.samples_ms
        return {
            "n": len(s),
            "p50_ms": _round(percentile(s, 0.50)),
            "p95_ms": _round(percentile(s, 0.95)),
            "p99_ms": _round(percentile(s, 0.99)),
            "mean_ms": _round(sum(s) / len(s)) if s else None,
            "min_ms": _round(min(s)) if s else None,
            "max_ms": _round(max(s)) if s else None,
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Variant:
    name: str
    run: Callable[[object], object]
    """Runs the measured operation once for a parameter; its wall time is the sample."""
    before: Callable[[object], object] | None = None
    """Untimed preparation of each sample (e.g. touching a source row)."""
    baseline: bool = False
    burst: bool = True
    server_time: bool = False
    """``run`` returns the server's own time in ms (EXPLAIN ANALYZE), recorded instead."""


# --------------------------------------------------------------------------------------
# The scratch database
# --------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path=f"/{name}", query=query))


@contextlib.contextmanager
def scratch_database(admin_url: str, *, keep: bool, say: Callable[[str], None]) -> Iterator[str]:
    """A new database on ``admin_url``'s server, dropped on the way out (error, Ctrl-C)."""
    name = f"efir_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    say(f"created scratch database {name}")
    try:
        yield url
    finally:
        if keep:
            say(f"kept scratch database {name}: {with_database(admin_url, name)}")
        else:
            try:
                with psycopg.connect(admin_url, autocommit=True) as c:
                    c.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
                say(f"dropped scratch database {name}")
            except psycopg.Error as exc:  # keep the original error, say what is left behind
                say(f"could not drop scratch database {name}: {exc}")


def admin_url_from_environment() -> tuple[str, bool]:
    """The server to work on: DATABASE_URL's, else the embedded one (started here)."""
    from efir_pipeline.core.db import embedded
    from efir_pipeline.core.settings import validate_url

    configured = os.environ.get("DATABASE_URL", "").strip()
    if configured:
        return validate_url(configured), False
    return embedded.start(database="postgres"), True


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


def refresh_supports_full() -> bool:
    return "full" in inspect.signature(refresh_view).parameters


def engine_settings() -> dict[str, str]:
    """The session settings the refresh engine uses for a per_version view's REFRESH."""
    from efir_pipeline.core.db import refresh

    settings = dict(getattr(refresh, "INCREMENTAL_SETTINGS", {"jit": "off"}))
    work_mem = getattr(refresh, "INCREMENTAL_WORK_MEM", None)
    if work_mem:
        settings["work_mem"] = work_mem
    return settings


def is_per_version(view: ManagedView) -> bool:
    """Whether the catalog marks the view for per-version (incremental) refreshes."""
    for value in vars(view).values():
        if str(getattr(value, "value", value)) == "per_version":
            return True
    return False


class Bench:
    def __init__(self, url: str, options: BenchOptions, say: Callable[[str], None]):
        self.url = url
        self.options = options
        self.say = say
        self.rng = random.Random(options.seed)
        self.measurements: list[Measurement] = []
        self.meta: dict = {}
        self.has_full = refresh_supports_full()
        self._connections: list[psycopg.Connection] = []

    # -- plumbing ----------------------------------------------------------------------

    def connect(self, role: str, **settings: str) -> psycopg.Connection:
        conn = psycopg.connect(
            self.url, autocommit=True, application_name=f"efir-bench-{role}", connect_timeout=10
        )
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        self._connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._connections.clear()

    def refresh(self, view: ManagedView, *, full: bool = True):
        kwargs = {"full": full} if self.has_full else {}
        result = refresh_view(view, url=self.url, trigger="bench", **kwargs)
        if not result.ok:
            raise BenchError(f"refresh of {view.name} failed: {result.error}")
        return result

    def relkind(self, view: ManagedView) -> str | None:
        with psycopg.connect(self.url) as c:
            row = c.execute(
                "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (view.qualified_name,)
            ).fetchone()
        return row[0] if row else None

    def add(self, m: Measurement) -> Measurement:
        self.measurements.append(m)
        return m

    # -- preparation -------------------------------------------------------------------

    def prepare(self) -> None:
        o = self.options
        t0 = time.perf_counter()
        migrate.upgrade(self.url)
        self.meta["migrate_seconds"] = round(time.perf_counter() - t0, 2)
        self.say(
            f"migrated in {self.meta['migrate_seconds']:.1f}s; loading demo data "
            f"({o.orgs} school(s) x {o.versions_per_org or 'EFIR'} versions, seed {o.seed})"
        )

        def progress(step: str, index: int, count: int) -> None:
            elapsed = time.perf_counter() - t_load
            self.say(f"  demo data {index}/{count} {step} (+{elapsed:.1f}s)")

        t_load = time.perf_counter()
        with psycopg.connect(self.url) as conn:
            summary = demo_data.load_demo_data(
                conn,
                orgs=o.orgs,
                versions_per_org=o.versions_per_org,
                seed=o.seed,
                progress=progress,
            )
        self.meta["demo_data"] = {
            "organizations": summary.organizations,
            "versions": summary.versions,
            "rows": summary.rows,
            "total_rows": sum(summary.rows.values()),
            "seconds": summary.seconds,
        }
        self.say(
            f"loaded {summary.versions:,} versions, {sum(summary.rows.values()):,} rows "
            f"in {summary.seconds:.1f}s; VACUUM ANALYZE"
        )
        # Hint bits and the visibility map, as autovacuum would have left them in production:
        # without this the first refresh pays for writing hint bits on every page.
        t0 = time.perf_counter()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        self.meta["vacuum_seconds"] = round(time.perf_counter() - t0, 2)

        initial = {}
        for view in catalog.resolve_views():
            self.say(f"initial refresh of {view.name}")
            t0 = time.perf_counter()
            result = self.refresh(view, full=True)
            initial[view.name] = {
                "seconds": round(time.perf_counter() - t0, 3),
                "rows": result.row_count,
                "size_bytes": result.size_bytes,
            }
        self.meta["initial_refresh"] = initial
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")  # the views' own visibility map and statistics
            self.versions = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM efir_budget.budget_versions WHERE deleted_at IS NULL ORDER BY id"
                )
            ]
            self.fiscal_years = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT fiscal_year FROM efir_budget.budget_versions "
                    "WHERE deleted_at IS NULL ORDER BY 1"
                )
            ]
            self.meta["database_size_bytes"] = conn.execute(
                "SELECT pg_database_size(current_database())"
            ).fetchone()[0]
        if not self.versions:
            raise BenchError("the demo data has no budget versions")
        self.sample = self.rng.sample(self.versions, min(200, len(self.versions)))

    # -- interleaved loop --------------------------------------------------------------

    def interleave(
        self,
        scenario: str,
        label: str,
        variants: Sequence[Variant],
        params: Sequence,
        *,
        rounds: int,
        notes: dict[str, str] | None = None,
    ) -> list[Measurement]:
        """Each round runs every variant (a burst of a fast one), alternating the order."""
        bursts = {}
        for v in variants:  # warm-up, untimed: plans, caches, prepared statements
            p = params[0]
            if v.before:
                v.before(p)
            t0 = time.perf_counter()
            v.run(p)
            took = time.perf_counter() - t0
            bursts[v.name] = max(1, min(MAX_BURST, int(BURST_BUDGET_S / max(took, 1e-6))))
            if not v.burst:
                bursts[v.name] = 1
            if took < BURST_BUDGET_S:
                for _ in range(5):
                    v.run(p)
        results = {
            v.name: self.add(
                Measurement(
                    scenario,
                    label,
                    v.name,
                    baseline=v.baseline,
                    notes=(notes or {}).get(v.name, ""),
                )
            )
            for v in variants
        }
        k = 0
        for r in range(rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for v in order:
                for _ in range(bursts[v.name]):
                    p = params[k % len(params)]
                    k += 1
                    if v.before:
                        v.before(p)
                    t0 = time.perf_counter()
                    value = v.run(p)
                    took = (time.perf_counter() - t0) * 1000
                    results[v.name].samples_ms.append(value if v.server_time else took)
        return list(results.values())

    # -- scenario: dashboard reads -----------------------------------------------------

    def scenario_reads(self) -> None:
        kpi = catalog.get_view(KPI_VIEW)
        cons = catalog.get_view(CONSOLIDATION_VIEW)
        mv = self.connect("read-mv")
        live = self.connect("read-live", statement_timeout="30min")
        nojit = self.connect("read-live-nojit", statement_timeout="30min", jit="off")
        jit_on, jit_available = live.execute(
            "SELECT current_setting('jit')::bool, pg_jit_available()"
        ).fetchone()
        self.meta["jit"] = {"setting": jit_on, "available": jit_available}

        def query(conn: psycopg.Connection, text: str) -> Callable[[object], object]:
            def run(param):
                return conn.execute(text, (param,)).fetchall()

            return run

        def server(conn: psycopg.Connection, text: str) -> Callable[[object], float]:
            explain = "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) " + text

            def run(param) -> float:
                (plan,) = conn.execute(explain, (param,)).fetchone()[0]
                return plan["Planning Time"] + plan["Execution Time"]

            return run

        cases = [
            (
                "read.one_version",
                "read: one version's KPI row",
                "SELECT * FROM {} WHERE budget_version_id = %s",
                kpi,
                self.sample,
            ),
            (
                "read.fiscal_year",
                "read: one fiscal year, all schools",
                "SELECT * FROM {} WHERE fiscal_year = %s ORDER BY organization_id, version_name",
                kpi,
                self.fiscal_years,
            ),
            (
                "read.consolidation",
                "read: one version's consolidation",
                "SELECT * FROM {} WHERE budget_version_id = %s ORDER BY account_code",
                cons,
                self.sample,
            ),
        ]
        for key, label, template, view, params in cases:
            params = list(params)
            self.rng.shuffle(params)
            mv_sql = template.format(view.qualified_name)
            live_sql = template.format(view.qualified_live_view)
            rows = len(mv.execute(mv_sql, (params[0],)).fetchall())
            variants = [
                Variant("materialized view", query(mv, mv_sql)),
                Variant("live query (jit as server)", query(live, live_sql), baseline=True),
            ]
            if jit_on and jit_available:
                variants.append(Variant("live query, jit=off", query(nojit, live_sql)))
            self.say(f"{label}: {len(variants)} variants x {self.options.repeat} rounds")
            ms = self.interleave(key, label, variants, params, rounds=self.options.repeat)
            for m in ms:
                m.extra["rows_returned_first_param"] = rows
            ms[0].notes = f"{rows:,} row(s), fetched and decoded by psycopg"
            if key != "read.fiscal_year":
                continue
            # Decoding thousands of rows in Python is the same for both sides and bounds the
            # ratio above; the server's own time (planning + execution) shows the view alone.
            variants = [
                Variant("materialized view", server(mv, mv_sql), server_time=True),
                Variant(
                    "live query (jit as server)",
                    server(live, live_sql),
                    baseline=True,
                    server_time=True,
                ),
            ]
            if jit_on and jit_available:
                variants.append(
                    Variant("live query, jit=off", server(nojit, live_sql), server_time=True)
                )
            label = f"{label} (server time)"
            self.say(f"{label}: {len(variants)} variants x {self.options.repeat} rounds")
            ms = self.interleave(
                f"{key}.server", label, variants, params, rounds=self.options.repeat
            )
            ms[0].notes = "EXPLAIN ANALYZE planning + execution, no transfer"

    # -- scenario: refreshes -----------------------------------------------------------

    def scenario_refresh(self) -> None:
        """Every view: CONCURRENTLY vs plain, no change vs one version changed.

        A ``full`` view's materialized view is ``SELECT * FROM`` its live query, so the SQL
        statements are full recomputes. A ``per_version`` view's materialized view reads
        the pipeline's cache and recomputes only unsynced versions: there the SQL
        statements measure the refresh over the cache (CONCURRENTLY's diff alone), the
        full recompute is measured on a scratch copy built the ``full`` way, and the
        pipeline's ``refresh_view`` is measured full and incremental.
        """
        raw = self.connect("refresh", statement_timeout="60min", lock_timeout="5min")
        # Over a per_version view's cache, with the session settings the engine uses there.
        cached = self.connect(
            "refresh-cache", statement_timeout="60min", lock_timeout="5min", **engine_settings()
        )
        writer = self.connect("writer")

        def statement(
            name: str, concurrently: bool, conn: psycopg.Connection | None = None
        ) -> Callable[[object], object]:
            text = sql.SQL("REFRESH MATERIALIZED VIEW {}{}").format(
                sql.SQL("CONCURRENTLY " if concurrently else ""), sql.Identifier(SCHEMA, name)
            )
            on = conn or raw
            return lambda _p: on.execute(text)

        def touch(view: ManagedView) -> Callable[[object], object]:
            sign = [1]

            def run(version):
                sign[0] = -sign[0]  # +1, -1, +1 ...: the data stays where it was
                writer.execute(TOUCH_SQL[view.name], {"delta": sign[0], "version": version})

            return run

        def pipeline(view: ManagedView, full: bool) -> Callable[[object], object]:
            return lambda _p: self.refresh(view, full=full)

        blocks = "ACCESS EXCLUSIVE: blocks readers"
        for view in catalog.resolve_views():
            kind = self.relkind(view)
            label = f"refresh: {view.name}"
            full_name = "refresh_view(full=True)" if self.has_full else "refresh_view()"
            variants: list[Variant] = []
            notes: dict[str, str] = {}
            if self.has_full and is_per_version(view):
                variants += [
                    Variant(f"{full_name}, no change", pipeline(view, True), baseline=True),
                    Variant(
                        "refresh_view(full=False) incremental, no change", pipeline(view, False)
                    ),
                ]
                if view.name in TOUCH_SQL:
                    variants.append(
                        Variant(
                            "refresh_view(full=False) incremental, 1 version changed",
                            pipeline(view, False),
                            before=touch(view),
                        )
                    )
                if kind == "m":
                    copy = self.full_copy(view)
                    variants += [
                        Variant(
                            "full recompute CONCURRENTLY, no change (scratch copy)",
                            statement(copy, True),
                        ),
                        Variant(
                            "full recompute plain, no change (scratch copy)", statement(copy, False)
                        ),
                        Variant(
                            "SQL REFRESH CONCURRENTLY over the cache, no change",
                            statement(view.name, True, cached),
                        ),
                        Variant(
                            "SQL plain REFRESH over the cache, no change",
                            statement(view.name, False, cached),
                        ),
                    ]
                    notes["full recompute plain, no change (scratch copy)"] = blocks
                    notes["SQL plain REFRESH over the cache, no change"] = blocks
            else:
                if kind == "m":
                    variants += [
                        Variant(
                            "CONCURRENTLY, no change", statement(view.name, True), baseline=True
                        ),
                        Variant("plain, no change", statement(view.name, False)),
                    ]
                    notes["plain, no change"] = blocks
                    if view.name in TOUCH_SQL:
                        variants.append(
                            Variant(
                                "CONCURRENTLY, 1 version changed",
                                statement(view.name, True),
                                before=touch(view),
                            )
                        )
                variants.append(
                    Variant(f"{full_name}, no change", pipeline(view, True), baseline=kind != "m")
                )
            for v in variants:
                v.burst = False
            self.say(f"{label}: {len(variants)} variants x {self.options.repeat} rounds")
            self.interleave(
                f"refresh.{view.name}",
                label,
                variants,
                self.sample,
                rounds=self.options.repeat,
                notes=notes,
            )
        # Leave every view exactly in sync with the data (and the refresh history with it).
        for view in catalog.resolve_views():
            self.refresh(view, full=True)

    def full_copy(self, view: ManagedView) -> str:
        """A scratch materialized view built the ``full`` way: SELECT * FROM the live query,
        with the same indexes as ``view``; the bench's own object in its own database."""
        name = f"bench_full_{view.name}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE MATERIALIZED VIEW IF NOT EXISTS {} AS SELECT * FROM {}").format(
                    sql.Identifier(SCHEMA, name), sql.Identifier(SCHEMA, view.live_view)
                )
            )
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
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(SCHEMA, name)))
        return name

    # -- scenario: readers during a refresh --------------------------------------------

    def readers(
        self, count: int, *, think_s: float, stop: threading.Event
    ) -> tuple[list[threading.Thread], list[list[tuple[float, float]]], dict, list]:
        """Reader threads over the one-version query; samples are (start, end) times."""
        kpi = catalog.get_view(KPI_VIEW)
        text = f"SELECT * FROM {kpi.qualified_name} WHERE budget_version_id = %s"
        conns = [
            self.connect(f"reader-{i}", lock_timeout=READER_LOCK_TIMEOUT, statement_timeout="60s")
            for i in range(count)
        ]
        for c in conns:  # the application_name the lock monitor looks for
            c.execute("SELECT set_config('application_name', %s, false)", (READER_APP,))
        samples: list[list[tuple[float, float]]] = [[] for _ in conns]
        counters = {"lock_timeouts": 0, "errors": 0, "last_error": None}
        lock = threading.Lock()

        def loop(i: int, conn: psycopg.Connection) -> None:
            rng = random.Random(self.options.seed + i)
            for _ in range(6):  # prepared statement before the first timed query
                conn.execute(text, (rng.choice(self.sample),)).fetchall()
            while not stop.is_set():
                version = rng.choice(self.sample)
                t0 = time.perf_counter()
                try:
                    conn.execute(text, (version,)).fetchall()
                    samples[i].append((t0, time.perf_counter()))
                except errors.LockNotAvailable:
                    with lock:
                        counters["lock_timeouts"] += 1
                except psycopg.Error as exc:
                    with lock:
                        counters["errors"] += 1
                        counters["last_error"] = str(exc).strip().splitlines()[0]
                    if conn.broken or conn.closed:
                        return
                if think_s:
                    time.sleep(think_s)

        threads = [
            threading.Thread(target=loop, args=(i, c), daemon=True, name=f"bench-reader-{i}")
            for i, c in enumerate(conns)
        ]
        return threads, samples, counters, conns

    def lock_monitor(
        self, stop: threading.Event
    ) -> tuple[threading.Thread, dict, psycopg.Connection]:
        """Samples pg_stat_activity: reader sessions waiting on a lock (every 20 ms)."""
        conn = self.connect("lock-monitor")
        seen = {"polls": 0, "waiting_observations": 0, "max_waiting": 0, "events": set()}

        def loop() -> None:
            while not stop.is_set():
                rows = conn.execute(
                    """SELECT wait_event FROM pg_stat_activity
                       WHERE datname = current_database() AND application_name = %s
                         AND wait_event_type = 'Lock'""",
                    (READER_APP,),
                ).fetchall()
                seen["polls"] += 1
                seen["waiting_observations"] += len(rows)
                seen["max_waiting"] = max(seen["max_waiting"], len(rows))
                seen["events"].update(r[0] for r in rows)
                time.sleep(0.02)

        thread = threading.Thread(target=loop, daemon=True, name="bench-lock-monitor")
        return thread, seen, conn

    def with_readers(
        self, count: int, think_s: float, body: Callable[[], list[tuple[float, float, str]]]
    ) -> tuple[list[tuple[float, float]], dict, dict, list[tuple[float, float, str]]]:
        stop = threading.Event()
        threads, samples, counters, conns = self.readers(count, think_s=think_s, stop=stop)
        monitor, seen, monitor_conn = self.lock_monitor(stop)
        for t in [*threads, monitor]:
            t.start()
        try:
            time.sleep(0.2)  # readers warm
            phases = body()
        finally:
            stop.set()
            for t in [*threads, monitor]:
                t.join(timeout=120)
            self.release([*conns, monitor_conn])
        seen["events"] = sorted(seen["events"])
        return [s for per in samples for s in per], counters, seen, phases

    def scenario_readers_during_refresh(self) -> None:
        kpi = catalog.get_view(KPI_VIEW)
        o = self.options
        min_idle = min(1.0, max(0.2, o.duration / 4))
        think = o.think_ms / 1000

        def alternate(refresh: Callable[[], object], rounds: int):
            def body() -> list[tuple[float, float, str]]:
                phases = []
                idle = min_idle
                for r in range(rounds):
                    t0 = time.perf_counter()
                    time.sleep(idle)
                    phases.append((t0, time.perf_counter(), "idle"))
                    t0 = time.perf_counter()
                    refresh()
                    t1 = time.perf_counter()
                    phases.append((t0, t1, "refresh"))
                    idle = max(min_idle, t1 - t0)
                    self.say(f"  round {r + 1}/{rounds}: refresh {t1 - t0:.2f}s")
                t0 = time.perf_counter()
                time.sleep(idle)
                phases.append((t0, time.perf_counter(), "idle"))
                return phases

            return body

        def classify(samples, phases) -> tuple[list[float], list[float]]:
            refreshes = [(a, b) for a, b, kind in phases if kind == "refresh"]
            idles = [(a, b) for a, b, kind in phases if kind == "idle"]
            idle_ms, during_ms = [], []
            for start, end in samples:
                ms = (end - start) * 1000
                if any(start < b and end > a for a, b in refreshes):
                    during_ms.append(ms)
                elif any(start >= a and end <= b for a, b in idles):
                    idle_ms.append(ms)
            return idle_ms, during_ms

        label = "readers during a refresh of mv_kpi_dashboard"
        full = "refresh_view(full=True)" if self.has_full else "refresh_view()"
        self.say(f"{label}: {o.refresh_readers} readers, {o.repeat} x (idle, {full})")
        samples, counters, seen, phases = self.with_readers(
            o.refresh_readers, think, alternate(lambda: self.refresh(kpi, full=True), o.repeat)
        )
        idle_ms, during_ms = classify(samples, phases)
        extra = {
            **counters,
            "lock_monitor": seen,
            "readers": o.refresh_readers,
            "think_ms": o.think_ms,
            "lock_timeout": READER_LOCK_TIMEOUT,
        }
        refresh_s = [b - a for a, b, k in phases if k == "refresh"]
        self.add(
            Measurement(
                "readers_during_refresh",
                label,
                "idle (between refreshes)",
                idle_ms,
                baseline=True,
                extra=extra,
            )
        )
        self.add(
            Measurement(
                "readers_during_refresh",
                label,
                f"during {full} (CONCURRENTLY)",
                during_ms,
                notes=f"{counters['lock_timeouts']} lock timeouts, "
                f"{seen['waiting_observations']} lock waits seen",
                extra={**extra, "refresh_seconds": refresh_s},
            )
        )

        if self.relkind(kpi) != "m":
            return
        settings = engine_settings() if self.has_full and is_per_version(kpi) else {}
        raw = self.connect(
            "refresh-plain", statement_timeout="60min", lock_timeout="5min", **settings
        )
        plain = sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(SCHEMA, kpi.name))
        rounds = min(2, o.repeat)
        self.say(f"{label}: contrast, {rounds} x (idle, plain REFRESH)")
        samples, counters, seen, phases = self.with_readers(
            o.refresh_readers, think, alternate(lambda: raw.execute(plain), rounds)
        )
        _, during_ms = classify(samples, phases)
        self.add(
            Measurement(
                "readers_during_refresh",
                label,
                "during plain REFRESH (contrast)",
                during_ms,
                notes=f"{counters['lock_timeouts']} lock timeouts, "
                f"{seen['waiting_observations']} lock waits seen",
                extra={
                    **counters,
                    "lock_monitor": seen,
                    "contrast": True,
                    "refresh_seconds": [b - a for a, b, k in phases if k == "refresh"],
                },
            )
        )
        self.refresh(kpi, full=True)  # back in sync, recorded in the history

    # -- scenario: from a change to the dashboard --------------------------------------

    def scenario_change_to_visible(self) -> None:
        kpi = catalog.get_view(KPI_VIEW)
        writer = self.connect("writer-visible")
        poller = self.connect("poller")
        label = "change to one version -> visible on the dashboard"
        read = f"SELECT total_revenue_sar FROM {kpi.qualified_name} WHERE budget_version_id = %s"
        update = """UPDATE efir_budget.revenue_plans
                       SET amount_sar = amount_sar + %s, updated_at = clock_timestamp()
                     WHERE id = (SELECT id FROM efir_budget.revenue_plans
                                 WHERE budget_version_id = %s AND deleted_at IS NULL
                                 ORDER BY account_code LIMIT 1)"""
        for _ in range(6):
            poller.execute(read, (self.sample[0],)).fetchone()
        step = [0]
        engine: list[dict] = []

        def change_and_wait(version, full: bool) -> float:
            old = poller.execute(read, (version,)).fetchone()[0]
            step[0] += 1
            seen_at: list[float] = []
            stop = threading.Event()

            def poll() -> None:
                while not stop.is_set():
                    if poller.execute(read, (version,)).fetchone()[0] != old:
                        seen_at.append(time.perf_counter())
                        return
                    time.sleep(POLL_SLEEP_S)

            thread = threading.Thread(target=poll, daemon=True, name="bench-poller")
            thread.start()
            try:
                with writer.transaction():
                    writer.execute(update, (1 + step[0] % 7, version))
                committed = time.perf_counter()
                result = self.refresh(kpi, full=full)
                thread.join(timeout=60)
            finally:
                stop.set()
                thread.join(timeout=60)
            if not seen_at:
                raise BenchError(f"the change to version {version} never showed on the dashboard")
            engine.append(
                {
                    "full": full,
                    "refresh_statement_seconds": round(result.duration_seconds, 4),
                    "versions_recomputed": getattr(result, "versions_recomputed", None),
                }
            )
            return (seen_at[0] - committed) * 1000

        full_name = "full refresh_view(full=True)" if self.has_full else "full refresh_view()"
        measured: dict[str, Measurement] = {
            "full": self.add(Measurement("change_to_visible", label, full_name, baseline=True)),
        }
        modes = ["full"]
        if self.has_full and is_per_version(kpi):
            modes.append("incremental")
            measured["incremental"] = self.add(
                Measurement("change_to_visible", label, "incremental refresh_view(full=False)")
            )
        else:
            self.add(
                Measurement(
                    "change_to_visible",
                    label,
                    "incremental refresh_view(full=False)",
                    available=False,
                    notes="n/a: refresh_view has no `full` parameter yet"
                    if not self.has_full
                    else "n/a: mv_kpi_dashboard is not per_version",
                )
            )
        self.say(f"{label}: {' vs '.join(modes)} x {self.options.repeat} rounds")
        versions = list(self.sample)
        self.rng.shuffle(versions)
        change_and_wait(versions[-1], full=True)  # warm-up
        for r in range(self.options.repeat):
            order = modes if r % 2 == 0 else list(reversed(modes))
            for mode in order:
                version = versions[(r * len(modes) + order.index(mode)) % len(versions)]
                ms = change_and_wait(version, full=(mode == "full"))
                measured[mode].samples_ms.append(ms)
        self.refresh(kpi, full=True)
        engine.pop(0)  # the warm-up
        for mode, m in measured.items():
            runs = [e for e in engine if e["full"] == (mode == "full")]
            statement_ms = [e["refresh_statement_seconds"] * 1000 for e in runs]
            m.extra["refresh_statement_p50_ms"] = _round(percentile(statement_ms, 0.5))
            m.extra["versions_recomputed"] = sorted(
                {e["versions_recomputed"] for e in runs}, key=lambda x: (x is None, x or 0)
            )
            recomputed = ", ".join(str(x) for x in m.extra["versions_recomputed"])
            m.notes = (
                f"REFRESH statement p50 {m.extra['refresh_statement_p50_ms'] or 0:,.1f} ms"
                + (f"; versions recomputed: {recomputed}" if recomputed != "None" else "")
            )

    # -- scenario: many concurrent readers ---------------------------------------------

    def scenario_concurrency(self) -> None:
        """N readers vs one, closed loop, bounded in time; and N readers from pgbench.

        Python threads share one GIL and the machine's cores with the server, so the
        psycopg figures are partly the client's; pgbench (C, when installed) runs the
        same query to show what the server does with N clients.
        """
        o = self.options
        label = f"{o.readers} concurrent dashboard readers (one-version query)"
        pgbench = shutil.which("pgbench")
        self.say(
            f"{label}: {o.duration:.0f}s of {o.readers} readers, interleaved with 1 reader"
            + (" and pgbench" if pgbench else "")
        )
        keys = {
            "one": "1 reader, closed loop (psycopg)",
            "many": f"{o.readers} readers, closed loop (psycopg, a connection each)",
            "pgbench": f"{o.readers} readers, pgbench -M prepared (C client)",
        }
        results = {
            key: self.add(Measurement("concurrent_readers", label, name, baseline=key == "one"))
            for key, name in keys.items()
        }
        totals = {
            key: {
                "queries": 0,
                "seconds": 0.0,
                "lock_timeouts": 0,
                "errors": 0,
                "lock_waits_seen": 0,
            }
            for key in results
        }
        if not pgbench:
            results["pgbench"].available = False
            results["pgbench"].notes = "n/a: pgbench is not installed"
        # Twice, alternating: N readers duration/2, one reader and pgbench duration/4 each.
        plan = [("many", o.readers, o.duration / 2), ("one", 1, o.duration / 4)]
        if pgbench:
            plan.append(("pgbench", o.readers, o.duration / 4))
        for key, n, seconds in plan * 2:
            t = totals[key]
            if key == "pgbench":
                latencies, counts, seen = self.pgbench_window(pgbench, n, seconds)
                results[key].samples_ms.extend(latencies)
                t["queries"] += counts["queries"]
                t["seconds"] += counts["seconds"]
                t["errors"] += counts["errors"]
                t["lock_waits_seen"] += seen["waiting_observations"]
                continue

            def body(seconds=seconds):
                t0 = time.perf_counter()
                time.sleep(seconds)
                return [(t0, time.perf_counter(), "window")]

            samples, counters, seen, phases = self.with_readers(n, 0.0, body)
            ((a, b, _),) = phases
            inside = [(s, e) for s, e in samples if s >= a and e <= b]
            results[key].samples_ms.extend((e - s) * 1000 for s, e in inside)
            t["queries"] += len(inside)
            t["seconds"] += b - a
            t["lock_timeouts"] += counters["lock_timeouts"]
            t["errors"] += counters["errors"]
            t["lock_waits_seen"] += seen["waiting_observations"]
        for key, m in results.items():
            if not m.available:
                continue
            t = totals[key]
            t["queries_per_second"] = round(t["queries"] / t["seconds"], 1) if t["seconds"] else 0
            m.extra = t
            m.notes = (
                f"{t['queries_per_second']:,.0f} queries/s, {t['lock_timeouts']} lock "
                f"timeouts, {t['errors']} errors, {t['lock_waits_seen']} lock waits seen"
            )

    def pgbench_window(
        self, pgbench: str, clients: int, seconds: float
    ) -> tuple[list[float], dict, dict]:
        """pgbench over the one-version query for ``seconds`` (whole seconds, at least 1)."""
        kpi = catalog.get_view(KPI_VIEW)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS public.bench_versions (n int PRIMARY KEY, id uuid)"
            )
            if not conn.execute("SELECT count(*) FROM public.bench_versions").fetchone()[0]:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO public.bench_versions VALUES (%s, %s)",
                        list(enumerate(self.sample, start=1)),
                    )
                conn.execute("ANALYZE public.bench_versions")
        whole = max(1, round(seconds))
        with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp:
            script = Path(tmp) / "read.sql"
            script.write_text(
                f"\\set r random(1, {len(self.sample)})\n"
                f"SELECT k.* FROM {kpi.qualified_name} k WHERE k.budget_version_id = "
                "(SELECT id FROM public.bench_versions WHERE n = :r);\n"
            )
            env = {
                **os.environ,
                "PGAPPNAME": READER_APP,
                "PGOPTIONS": f"-c lock_timeout={READER_LOCK_TIMEOUT} -c statement_timeout=60s",
            }
            stop = threading.Event()
            monitor, seen, monitor_conn = self.lock_monitor(stop)
            monitor.start()
            try:
                done = subprocess.run(
                    [
                        pgbench,
                        "-n",
                        "-c",
                        str(clients),
                        "-j",
                        str(min(clients, os.cpu_count() or 1)),
                        "-T",
                        str(whole),
                        "-M",
                        "prepared",
                        "-f",
                        str(script),
                        "-l",
                        f"--log-prefix={tmp}/log",
                        self.url,
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=whole + 120,
                    check=False,
                )
            finally:
                stop.set()
                monitor.join(timeout=60)
                self.release([monitor_conn])
            latencies = []
            for log in Path(tmp).glob("log*"):
                for line in log.read_text().splitlines():
                    fields = line.split()
                    if len(fields) >= 3 and fields[2].isdigit():  # failed ones log "failed"
                        latencies.append(int(fields[2]) / 1000)
        failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
        aborted = re.findall(r"client \d+ aborted", done.stderr)
        errors_seen = (int(failed.group(1)) if failed else 0) + len(aborted)
        if done.returncode not in (0, 2) or not latencies:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"pgbench failed (exit {done.returncode}): {detail}")
        seen["events"] = sorted(seen["events"])
        return latencies, {"queries": len(latencies), "seconds": whole, "errors": errors_seen}, seen

    def release(self, conns: Sequence[psycopg.Connection]) -> None:
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._connections = [c for c in self._connections if not any(c is x for x in conns)]

    # -- all of it ---------------------------------------------------------------------

    def run(self) -> None:
        steps = {
            "reads": self.scenario_reads,
            "refresh": self.scenario_refresh,
            "readers": self.scenario_readers_during_refresh,
            "visible": self.scenario_change_to_visible,
            "concurrency": self.scenario_concurrency,
        }
        for name in SCENARIOS:
            if name in self.options.scenarios:
                t0 = time.perf_counter()
                steps[name]()
                self.meta.setdefault("scenario_seconds", {})[name] = round(
                    time.perf_counter() - t0, 1
                )

    def server_facts(self) -> dict:
        with psycopg.connect(self.url, autocommit=True) as conn:
            facts = {
                "version": conn.execute("SELECT version()").fetchone()[0],
                "server_version_num": conn.info.server_version,
            }
            for name in (
                "shared_buffers",
                "work_mem",
                "maintenance_work_mem",
                "effective_cache_size",
                "jit",
                "max_parallel_workers_per_gather",
                "max_connections",
                "synchronous_commit",
                "random_page_cost",
            ):
                facts[name] = conn.execute(
                    sql.SQL("SHOW {}").format(sql.Identifier(name))
                ).fetchone()[0]
            facts["views"] = {}
            for v in catalog.resolve_views():
                rows, size = conn.execute(
                    sql.SQL("SELECT count(*), pg_total_relation_size({}) FROM {}").format(
                        sql.Literal(v.qualified_name), sql.Identifier(SCHEMA, v.name)
                    )
                ).fetchone()
                facts["views"][v.name] = {"rows": rows, "size_bytes": size}
        return facts


# --------------------------------------------------------------------------------------
# Report: table, targets, JSON
# --------------------------------------------------------------------------------------


def machine_facts() -> dict:
    facts = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    return facts


def summarize(measurements: Sequence[Measurement]) -> list[dict]:
    """One dict per measurement with p50/p95 and the ratio to its scenario's baseline."""
    baselines = {m.scenario: m for m in measurements if m.baseline}
    rows = []
    for m in measurements:
        s = m.summary()
        base = baselines.get(m.scenario)
        b = base.summary() if base else None
        speedup = speedup95 = None
        if m.available and b and s["p50_ms"] and b["p50_ms"]:
            speedup = float(f"{b['p50_ms'] / s['p50_ms']:.4g}")
        if m.available and b and s["p95_ms"] and b["p95_ms"]:
            speedup95 = float(f"{b['p95_ms'] / s['p95_ms']:.4g}")
        rows.append(
            {
                "scenario": m.scenario,
                "label": m.label,
                "variant": m.variant,
                "baseline": m.baseline,
                "available": m.available,
                **s,
                "speedup_vs_baseline_p50": speedup,
                "speedup_vs_baseline_p95": speedup95,
                "notes": m.notes,
                "extra": m.extra,
            }
        )
    return rows


def _times(speedup: float | None, baseline: bool, available: bool) -> str:
    if not available:
        return "n/a"
    if baseline:
        return "baseline"
    if not speedup:
        return "-"
    factor = speedup if speedup >= 1 else 1 / speedup
    digits = 2 if factor < 10 else 1 if factor < 100 else 0
    return f"{factor:,.{digits}f}x {'faster' if speedup >= 1 else 'slower'}"


def table(rows: Sequence[dict]) -> str:
    lines, last = [], None
    for r in rows:
        lines.append(
            {
                "scenario": r["label"] if r["label"] != last else "",
                "variant": r["variant"],
                "p50 ms": r["p50_ms"],
                "p95 ms": r["p95_ms"],
                "vs baseline (p50)": _times(
                    r["speedup_vs_baseline_p50"], r["baseline"], r["available"]
                ),
                "n": r["n"],
                "notes": r["notes"],
            }
        )
        last = r["label"]
    return render(lines)


def _find(rows: Sequence[dict], scenario: str, prefix: str) -> dict | None:
    for r in rows:
        if r["scenario"] == scenario and r["variant"].startswith(prefix) and r["available"]:
            return r if r["n"] else None
    return None


def targets(rows: Sequence[dict]) -> list[dict]:
    """The issue's targets (network scale, 2 cores), met or not, with the numbers."""
    out = []

    def add(name: str, met: bool | None, detail: str) -> None:
        out.append({"target": name, "met": met, "detail": detail})

    one = _find(rows, "read.one_version", "materialized view")
    if one:
        add(
            "view read, one version: p50 <= 2 ms",
            one["p50_ms"] <= 2.0,
            f"p50 {one['p50_ms']:.3f} ms (p95 {one['p95_ms']:.3f} ms)",
        )
    else:
        add("view read, one version: p50 <= 2 ms", None, "not measured")

    def fastest_live_ratio(scenario: str) -> tuple[float, dict, dict] | None:
        view = _find(rows, scenario, "materialized view")
        lives = [
            r
            for r in rows
            if r["scenario"] == scenario and r["variant"].startswith("live") and r["n"]
        ]
        if not view or not lives:
            return None
        best = min(lives, key=lambda r: r["p50_ms"])
        return best["p50_ms"] / view["p50_ms"], view, best

    name = "fiscal-year list: view >= 50x faster than the live query"
    wall = fastest_live_ratio("read.fiscal_year")
    server = fastest_live_ratio("read.fiscal_year.server")
    parts = []
    for what, found in (("server time", server), ("end to end through psycopg", wall)):
        if found:
            ratio, view, best = found
            parts.append(
                f"{what} {ratio:,.0f}x (view p50 {view['p50_ms']:.2f} ms vs {best['variant']} "
                f"p50 {best['p50_ms']:,.1f} ms)"
            )
    # Judged on the server's time: decoding the rows in the client costs both sides alike.
    judged = server or wall
    add(name, judged[0] >= 50 if judged else None, "; ".join(parts) or "not measured")

    idle = _find(rows, "readers_during_refresh", "idle")
    during = _find(rows, "readers_during_refresh", "during refresh_view")
    if idle and during:
        ratio = during["p95_ms"] / idle["p95_ms"]
        add(
            "reader p95 during a full refresh <= 2x idle",
            ratio <= 2.0,
            f"{ratio:.2f}x: p95 {during['p95_ms']:.3f} ms during vs {idle['p95_ms']:.3f} ms "
            f"idle (p50 {during['p50_ms']:.3f} vs {idle['p50_ms']:.3f} ms)",
        )
        waits = during["extra"].get("lock_timeouts", 0) + during["extra"].get("errors", 0)
        seen = during["extra"].get("lock_monitor", {}).get("waiting_observations", 0)
        conc = _find(rows, "concurrent_readers", "")
        conc_waits = sum(
            r["extra"].get("lock_timeouts", 0) + r["extra"].get("lock_waits_seen", 0)
            for r in rows
            if r["scenario"] == "concurrent_readers"
        )
        add(
            "no reader waits on a lock (lock_timeout 100ms + pg_stat_activity)",
            waits == 0 and seen == 0 and conc_waits == 0,
            f"during refresh: {during['extra'].get('lock_timeouts', 0)} lock timeouts, "
            f"{during['extra'].get('errors', 0)} other errors, {seen} lock waits seen in "
            f"{during['extra'].get('lock_monitor', {}).get('polls', 0)} samples"
            + (f"; concurrent readers: {conc_waits}" if conc else ""),
        )
    else:
        add("reader p95 during a full refresh <= 2x idle", None, "not measured")
        add(
            "no reader waits on a lock (lock_timeout 100ms + pg_stat_activity)",
            None,
            "not measured",
        )

    full = _find(rows, "change_to_visible", "full")
    inc = _find(rows, "change_to_visible", "incremental")
    if full and inc:
        ratio = full["p50_ms"] / inc["p50_ms"]
        add(
            "one-version change visible >= 20x faster incremental than full",
            ratio >= 20,
            f"{ratio:,.1f}x: incremental p50 {inc['p50_ms']:.1f} ms vs full "
            f"{full['p50_ms']:.1f} ms",
        )
    elif full:
        add(
            "one-version change visible >= 20x faster incremental than full",
            None,
            f"pending: no incremental refresh yet (full p50 {full['p50_ms']:.1f} ms)",
        )
    else:
        add("one-version change visible >= 20x faster incremental than full", None, "not measured")
    return out


def verdict_lines(found: Sequence[dict]) -> str:
    word = {True: "met", False: "NOT MET", None: "n/a"}
    width = max(len(t["target"]) for t in found)
    return "\n".join(f"  {word[t['met']]:<8} {t['target']:<{width}}  {t['detail']}" for t in found)


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def run_bench(
    options: BenchOptions,
    *,
    server_url: str | None = None,
    out=None,
    err=None,
) -> dict:
    """Run everything on a scratch database of ``server_url``'s server; return the report."""
    out = out or sys.stdout
    err = err or sys.stderr
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[bench +{time.perf_counter() - started:6.1f}s] {message}", file=err, flush=True)

    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        raise BenchError(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    if options.repeat < 1 or options.readers < 1 or options.refresh_readers < 1:
        raise BenchError("--repeat, --readers and --refresh-readers must be at least 1")
    if options.duration <= 0:
        raise BenchError("--duration must be positive")

    started_embedded = False
    if server_url is None:
        server_url, started_embedded = admin_url_from_environment()
    report: dict = {}
    try:
        with scratch_database(server_url, keep=options.keep, say=say) as url:
            bench = Bench(url, options, say)
            bench.meta["database"] = urlsplit(url).path.lstrip("/")
            try:
                bench.prepare()
                bench.run()
                server = bench.server_facts()
            finally:
                bench.close()
            rows = summarize(bench.measurements)
            found = targets(rows)
            report = {
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": options.command,
                "scale": {
                    "orgs": options.orgs,
                    "versions_per_org": options.versions_per_org,
                    "seed": options.seed,
                    "network_scale": (options.orgs, options.versions_per_org)
                    == demo_data.SCALES["network"],
                },
                "options": {
                    "repeat": options.repeat,
                    "readers": options.readers,
                    "duration": options.duration,
                    "refresh_readers": options.refresh_readers,
                    "think_ms": options.think_ms,
                    "scenarios": list(options.scenarios),
                },
                "incremental_refresh_available": bench.has_full,
                "machine": machine_facts(),
                "server": server,
                "setup": bench.meta,
                "results": rows,
                "targets": found,
                "seconds": round(time.perf_counter() - started, 1),
            }
    finally:
        if started_embedded:
            from efir_pipeline.core.db import embedded

            embedded.stop()

    scale = report["scale"]
    print(
        f"efir-pipeline bench: {scale['orgs']} school(s) x "
        f"{scale['versions_per_org'] or 'EFIR'} versions "
        f"({report['setup']['demo_data']['versions']:,} versions, "
        f"{report['setup']['demo_data']['total_rows']:,} rows), "
        f"{report['machine']['nproc']} cores, PostgreSQL "
        f"{report['server']['version'].split()[1]}; times in ms, p50/p95 over n samples",
        file=out,
    )
    print(table(report["results"]), file=out)
    note = "" if scale["network_scale"] else " (the targets are set for network scale: 600 x 20)"
    print(f"\ntargets{note}:", file=out)
    print(verdict_lines(report["targets"]), file=out)
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nwrote {options.json_path}", file=out)
    out.flush()
    return report


def add_parser(commands) -> argparse.ArgumentParser:
    """The ``bench`` subcommand (called from cli.build_parser)."""
    bench = commands.add_parser(
        "bench",
        help="benchmark the views on a scratch database at network scale (dropped at the end)",
        description="Create a scratch database on the configured server, load demo data, "
        "measure view reads vs the live queries, refreshes, readers during refreshes, "
        "change-to-visible and concurrent readers; print one table and write JSON.",
    )
    bench.add_argument(
        "--scale",
        choices=sorted(demo_data.SCALES),
        default="network",
        help="demo data size (default: network = 600 schools x 20 versions)",
    )
    bench.add_argument("--orgs", type=_positive, help="number of schools (overrides --scale)")
    bench.add_argument("--versions-per-org", type=_positive, help="budget versions per school")
    bench.add_argument("--seed", type=int, default=42, help="demo data seed (default: 42)")
    bench.add_argument(
        "--repeat", type=_positive, default=10, help="rounds per comparison (default: 10)"
    )
    bench.add_argument(
        "--readers", type=_positive, default=50, help="concurrent readers (default: 50)"
    )
    bench.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds of the concurrent-readers run (default: 10)",
    )
    bench.add_argument(
        "--refresh-readers",
        type=_positive,
        default=4,
        help="readers running during refreshes (default: 4)",
    )
    bench.add_argument(
        "--think-ms",
        type=float,
        default=5.0,
        help="pause between two reads of a reader during refreshes (default: 5)",
    )
    bench.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    bench.add_argument(
        "--json",
        default="bench-results.json",
        metavar="PATH",
        help="where to write the results (default: bench-results.json)",
    )
    bench.add_argument("--keep", action="store_true", help="keep the scratch database")
    bench.set_defaults(handler=cmd_bench)
    return bench


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_bench(args) -> int:
    orgs, versions = demo_data.SCALES[args.scale]
    if args.orgs:
        orgs, versions = args.orgs, args.versions_per_org or versions
    elif args.versions_per_org:
        versions = args.versions_per_org
    scenarios = tuple(s.strip() for s in args.only.split(",")) if args.only else SCENARIOS
    options = BenchOptions(
        orgs=orgs,
        versions_per_org=versions,
        seed=args.seed,
        repeat=args.repeat,
        readers=args.readers,
        duration=args.duration,
        refresh_readers=args.refresh_readers,
        think_ms=args.think_ms,
        scenarios=scenarios,
        json_path=args.json,
        keep=args.keep,
        command="efir-pipeline " + " ".join(sys.argv[1:]),
    )
    run_bench(options)
    return 0
