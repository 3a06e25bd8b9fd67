"""From a change to the dashboard: how long until a committed edit is visible.

One revenue row of one version is updated and committed, the view refreshed, and a
poller reads the dashboard row until it shows the new figure: the delay a user editing a
budget actually waits. A full refresh vs an incremental one (per_version views only).
"""

from __future__ import annotations

import threading
import time

from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.measure import Measurement, percentile, rounded
from efir_pipeline.cli.bench.options import KPI_VIEW, BenchError
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import ManagedView

SCENARIO = "change_to_visible"
LABEL = "change to one version -> visible on the dashboard"
POLL_SLEEP_S = 0.001
UPDATE = """UPDATE efir_budget.revenue_plans
               SET amount_sar = amount_sar + %s, updated_at = clock_timestamp()
             WHERE id = (SELECT id FROM efir_budget.revenue_plans
                         WHERE budget_version_id = %s AND deleted_at IS NULL
                         ORDER BY account_code LIMIT 1)"""


class _ChangeWatcher:
    """Changes one version, refreshes, and times the commit until the poller sees it."""

    def __init__(self, bench: Bench, kpi: ManagedView):
        self.bench = bench
        self.kpi = kpi
        self.writer = bench.connect("writer-visible")
        self.poller = bench.connect("poller")
        self.read = (
            f"SELECT total_revenue_sar FROM {kpi.qualified_name} WHERE budget_version_id = %s"
        )
        for _ in range(6):
            self.poller.execute(self.read, (bench.sample[0],)).fetchone()
        self.step = 0
        self.engine: list[dict] = []  # what the refresh engine reported, change by change

    def __call__(self, version: object, full: bool) -> float:
        """Milliseconds from the commit of a change to ``version`` to the poller seeing it."""
        old = self.poller.execute(self.read, (version,)).fetchone()[0]
        self.step += 1
        seen_at: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(
            target=self._poll, args=(version, old, seen_at, stop), daemon=True, name="bench-poller"
        )
        thread.start()
        try:
            with self.writer.transaction():
                self.writer.execute(UPDATE, (1 + self.step % 7, version))
            committed = time.perf_counter()
            result = self.bench.refresh(self.kpi, full=full)
            thread.join(timeout=60)
        finally:
            stop.set()
            thread.join(timeout=60)
        if not seen_at:
            raise BenchError(f"the change to version {version} never showed on the dashboard")
        self.engine.append(
            {
                "full": full,
                "refresh_statement_seconds": round(result.duration_seconds, 4),
                "versions_recomputed": result.versions_recomputed,
            }
        )
        return (seen_at[0] - committed) * 1000

    def _poll(
        self, version: object, old: object, seen_at: list[float], stop: threading.Event
    ) -> None:
        while not stop.is_set():
            if self.poller.execute(self.read, (version,)).fetchone()[0] != old:
                seen_at.append(time.perf_counter())
                return
            time.sleep(POLL_SLEEP_S)


def measure_change_to_visible(bench: Bench) -> None:
    kpi = catalog.get_view(KPI_VIEW)
    watch = _ChangeWatcher(bench, kpi)
    measured = _measurements(bench, kpi)
    modes = list(measured)
    bench.say(f"{LABEL}: {' vs '.join(modes)} x {bench.options.repeat} rounds")
    versions = list(bench.sample)
    bench.rng.shuffle(versions)
    watch(versions[-1], full=True)  # warm-up
    for r in range(bench.options.repeat):
        order = modes if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            version = versions[(r * len(modes) + order.index(mode)) % len(versions)]
            measured[mode].samples_ms.append(watch(version, full=(mode == "full")))
    bench.refresh(kpi, full=True)
    watch.engine.pop(0)  # the warm-up
    _describe(measured, watch.engine)


def _measurements(bench: Bench, kpi: ManagedView) -> dict[str, Measurement]:
    """The modes to measure (``full``, and ``incremental`` for a per_version view)."""
    measured = {
        "full": bench.add(
            Measurement(SCENARIO, LABEL, "full refresh_view(full=True)", baseline=True)
        ),
    }
    incremental = Measurement(SCENARIO, LABEL, "incremental refresh_view(full=False)")
    if kpi.incremental:
        measured["incremental"] = bench.add(incremental)
    else:
        incremental.available = False
        incremental.notes = "n/a: mv_kpi_dashboard is not per_version"
        bench.add(incremental)
    return measured


def _describe(measured: dict[str, Measurement], engine: list[dict]) -> None:
    """The refresh statement's own time and the versions it recomputed, per mode."""
    for mode, m in measured.items():
        runs = [e for e in engine if e["full"] == (mode == "full")]
        statement_ms = [e["refresh_statement_seconds"] * 1000 for e in runs]
        m.extra["refresh_statement_p50_ms"] = rounded(percentile(statement_ms, 0.5))
        m.extra["versions_recomputed"] = sorted(
            {e["versions_recomputed"] for e in runs}, key=lambda x: (x is None, x or 0)
        )
        recomputed = ", ".join(str(x) for x in m.extra["versions_recomputed"])
        m.notes = f"REFRESH statement p50 {m.extra['refresh_statement_p50_ms'] or 0:,.1f} ms" + (
            f"; versions recomputed: {recomputed}" if recomputed != "None" else ""
        )
