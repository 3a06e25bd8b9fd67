"""The bench every scenario works on: a prepared scratch database and what it measured.

One :class:`Bench` per run opens (and closes) the connections, runs the pipeline's own
refreshes, holds the versions and fiscal years the scenarios query, and collects the
measurements the report is built from. Preparing it loads demo data at the requested
scale and leaves the database as production would be: vacuumed, analyzed, refreshed.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence

import psycopg

from efir_pipeline.cli import demo_data
from efir_pipeline.cli.bench.measure import Measurement, Variant, interleave
from efir_pipeline.cli.bench.options import BenchError, BenchOptions
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.refresh import INCREMENTAL_SETTINGS, INCREMENTAL_WORK_MEM, refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult


def engine_settings() -> dict[str, str]:
    """The session settings the refresh engine uses for a per_version view's REFRESH."""
    return {**INCREMENTAL_SETTINGS, "work_mem": INCREMENTAL_WORK_MEM}


class Bench:
    def __init__(self, url: str, options: BenchOptions, say: Callable[[str], None]):
        self.url = url
        self.options = options
        self.say = say
        self.rng = random.Random(options.seed)
        self.measurements: list[Measurement] = []
        self.meta: dict = {}
        self.versions: list = []
        self.fiscal_years: list = []
        self.sample: list = []  # up to 200 versions at random: what the readers ask for
        self._connections: list[psycopg.Connection] = []

    # -- connections -------------------------------------------------------------------

    def connect(self, role: str, **settings: str) -> psycopg.Connection:
        conn = psycopg.connect(
            self.url, autocommit=True, application_name=f"efir-bench-{role}", connect_timeout=10
        )
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        self._connections.append(conn)
        return conn

    def release(self, conns: Sequence[psycopg.Connection]) -> None:
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._connections = [c for c in self._connections if not any(c is x for x in conns)]

    def close(self) -> None:
        for conn in self._connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._connections.clear()

    # -- the pipeline and the catalog ----------------------------------------------------

    def refresh(self, view: ManagedView, *, full: bool = True) -> RefreshResult:
        result = refresh_view(view, url=self.url, trigger="bench", full=full)
        if not result.ok:
            raise BenchError(f"refresh of {view.name} failed: {result.error}")
        return result

    def relkind(self, view: ManagedView) -> str | None:
        with psycopg.connect(self.url) as c:
            row = c.execute(
                "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (view.qualified_name,)
            ).fetchone()
        return row[0] if row else None

    # -- results -----------------------------------------------------------------------

    def add(self, m: Measurement) -> Measurement:
        self.measurements.append(m)
        return m

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
        """:func:`~efir_pipeline.cli.bench.measure.interleave`, its results recorded."""
        found = interleave(scenario, label, variants, params, rounds=rounds, notes=notes)
        return [self.add(m) for m in found]

    # -- preparation -------------------------------------------------------------------

    def prepare(self) -> None:
        """Migrate, load demo data, refresh every view once, pick the versions to query."""
        self._migrate()
        self._load_demo_data()
        self._initial_refreshes()
        self._pick_versions()

    def _migrate(self) -> None:
        o = self.options
        t0 = time.perf_counter()
        migrate.upgrade(self.url)
        self.meta["migrate_seconds"] = round(time.perf_counter() - t0, 2)
        self.say(
            f"migrated in {self.meta['migrate_seconds']:.1f}s; loading demo data "
            f"({o.orgs} school(s) x {o.versions_per_org or 'EFIR'} versions, seed {o.seed})"
        )

    def _load_demo_data(self) -> None:
        o = self.options

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

    def _initial_refreshes(self) -> None:
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

    def _pick_versions(self) -> None:
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
