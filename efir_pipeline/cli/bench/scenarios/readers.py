"""Readers during a refresh: what a dashboard user feels while mv_kpi_dashboard refreshes.

Reader threads loop over the one-version query with a short lock_timeout while the main
thread alternates idle spells and full refreshes; each read is classed as idle or
during-refresh by its timestamps. A lock wait shows up as a lock_timeout error and in
pg_stat_activity (sampled). A plain REFRESH follows for contrast: it is what
CONCURRENTLY avoids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from psycopg import sql

from efir_pipeline.cli.bench.harness import Bench, engine_settings
from efir_pipeline.cli.bench.measure import Measurement
from efir_pipeline.cli.bench.options import KPI_VIEW, READER_LOCK_TIMEOUT
from efir_pipeline.cli.bench.workload import Phase, Sample, with_readers
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA, ManagedView

SCENARIO = "readers_during_refresh"
LABEL = "readers during a refresh of mv_kpi_dashboard"
FULL_REFRESH = "refresh_view(full=True)"


def measure_readers_during_refresh(bench: Bench) -> None:
    kpi = catalog.get_view(KPI_VIEW)
    _during_full_refresh(bench, kpi)
    if bench.relkind(kpi) != "m":
        return
    _during_plain_refresh(bench, kpi)
    bench.refresh(kpi, full=True)  # back in sync, recorded in the history


def _during_full_refresh(bench: Bench, kpi: ManagedView) -> None:
    o = bench.options
    bench.say(f"{LABEL}: {o.refresh_readers} readers, {o.repeat} x (idle, {FULL_REFRESH})")
    samples, counters, seen, phases = with_readers(
        bench,
        o.refresh_readers,
        o.think_ms / 1000,
        _alternate(bench, lambda: bench.refresh(kpi, full=True), o.repeat),
    )
    idle_ms, during_ms = _classify(samples, phases)
    extra = {
        **counters,
        "lock_monitor": seen,
        "readers": o.refresh_readers,
        "think_ms": o.think_ms,
        "lock_timeout": READER_LOCK_TIMEOUT,
    }
    bench.add(
        Measurement(
            SCENARIO, LABEL, "idle (between refreshes)", idle_ms, baseline=True, extra=extra
        )
    )
    bench.add(
        Measurement(
            SCENARIO,
            LABEL,
            f"during {FULL_REFRESH} (CONCURRENTLY)",
            during_ms,
            notes=_waits(counters, seen),
            extra={**extra, "refresh_seconds": _refresh_seconds(phases)},
        )
    )


def _during_plain_refresh(bench: Bench, kpi: ManagedView) -> None:
    o = bench.options
    settings = engine_settings() if kpi.incremental else {}
    raw = bench.connect("refresh-plain", statement_timeout="60min", lock_timeout="5min", **settings)
    plain = sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(SCHEMA, kpi.name))
    rounds = min(2, o.repeat)
    bench.say(f"{LABEL}: contrast, {rounds} x (idle, plain REFRESH)")
    samples, counters, seen, phases = with_readers(
        bench,
        o.refresh_readers,
        o.think_ms / 1000,
        _alternate(bench, lambda: raw.execute(plain), rounds),
    )
    _, during_ms = _classify(samples, phases)
    bench.add(
        Measurement(
            SCENARIO,
            LABEL,
            "during plain REFRESH (contrast)",
            during_ms,
            notes=_waits(counters, seen),
            extra={
                **counters,
                "lock_monitor": seen,
                "contrast": True,
                "refresh_seconds": _refresh_seconds(phases),
            },
        )
    )


def _alternate(
    bench: Bench, refresh: Callable[[], object], rounds: int
) -> Callable[[], list[Phase]]:
    """Idle, refresh, idle, ... idle: each idle spell at least as long as the last refresh."""
    min_idle = min(1.0, max(0.2, bench.options.duration / 4))

    def body() -> list[Phase]:
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
            bench.say(f"  round {r + 1}/{rounds}: refresh {t1 - t0:.2f}s")
        t0 = time.perf_counter()
        time.sleep(idle)
        phases.append((t0, time.perf_counter(), "idle"))
        return phases

    return body


def _classify(
    samples: Sequence[Sample], phases: Sequence[Phase]
) -> tuple[list[float], list[float]]:
    """Reads overlapping a refresh, and reads wholly inside an idle spell (in ms)."""
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


def _refresh_seconds(phases: Sequence[Phase]) -> list[float]:
    return [b - a for a, b, k in phases if k == "refresh"]


def _waits(counters: dict, seen: dict) -> str:
    return (
        f"{counters['lock_timeouts']} lock timeouts, {seen['waiting_observations']} lock waits seen"
    )
