"""What a run is asked to do, and the names every part of the benchmark agrees on.

Kept apart from the harness and the scenarios so both (and the command line) share one
definition without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from efir_pipeline.cli import demo_data
from efir_pipeline.core.errors import EfirError

KPI_VIEW = "mv_kpi_dashboard"
CONSOLIDATION_VIEW = "mv_budget_consolidation"
READER_APP = "efir-bench-reader"
"""The application_name of the timed readers (pgbench's too): the lock monitor looks for it."""
READER_LOCK_TIMEOUT = "100ms"
"""A reader that would wait on a lock longer than this fails instead, and is counted."""


class BenchError(EfirError):
    """The benchmark could not run (a refresh failed, bad options...)."""


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
    scenarios: tuple[str, ...] = ()
    """Names from ``SCENARIOS``, run in that mapping's order; empty: every one."""
    json_path: str | None = "bench-results.json"
    keep: bool = False
    command: str | None = None
