"""Background dashboard readers, and a watch for any of them waiting on a lock.

Readers during a refresh and the concurrency scenario both need a crowd of readers (a
connection and a thread each) whose every query is timed, and a way to see a lock wait
shorter than the readers' lock_timeout: pg_stat_activity, sampled.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import errors

from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.options import KPI_VIEW, READER_APP, READER_LOCK_TIMEOUT
from efir_pipeline.core import catalog

Sample = tuple[float, float]
"""A query's start and end (``time.perf_counter``)."""
Phase = tuple[float, float, str]
"""What the main thread did between two instants: ``idle``, ``refresh``, ``window``..."""


class Readers:
    """Reader threads over the one-version query; samples are (start, end) times."""

    def __init__(self, bench: Bench, count: int, *, think_s: float, stop: threading.Event):
        kpi = catalog.get_view(KPI_VIEW)
        self.text = f"SELECT * FROM {kpi.qualified_name} WHERE budget_version_id = %s"
        self.versions = bench.sample
        self.seed = bench.options.seed
        self.think_s = think_s
        self.stop = stop
        self.conns = [
            bench.connect(f"reader-{i}", lock_timeout=READER_LOCK_TIMEOUT, statement_timeout="60s")
            for i in range(count)
        ]
        for c in self.conns:  # the application_name the lock monitor looks for
            c.execute("SELECT set_config('application_name', %s, false)", (READER_APP,))
        self.samples: list[list[Sample]] = [[] for _ in self.conns]
        self.counters: dict = {"lock_timeouts": 0, "errors": 0, "last_error": None}
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._loop, args=(i, c), daemon=True, name=f"bench-reader-{i}")
            for i, c in enumerate(self.conns)
        ]

    def _loop(self, i: int, conn: psycopg.Connection) -> None:
        rng = random.Random(self.seed + i)
        for _ in range(6):  # prepared statement before the first timed query
            conn.execute(self.text, (rng.choice(self.versions),)).fetchall()
        while not self.stop.is_set():
            if not self._read(i, conn, rng.choice(self.versions)):
                return
            if self.think_s:
                time.sleep(self.think_s)

    def _read(self, i: int, conn: psycopg.Connection, version: object) -> bool:
        """One timed query; False once the connection is gone."""
        t0 = time.perf_counter()
        try:
            conn.execute(self.text, (version,)).fetchall()
            self.samples[i].append((t0, time.perf_counter()))
        except errors.LockNotAvailable:
            with self._lock:
                self.counters["lock_timeouts"] += 1
        except psycopg.Error as exc:
            with self._lock:
                self.counters["errors"] += 1
                self.counters["last_error"] = str(exc).strip().splitlines()[0]
            if conn.broken or conn.closed:
                return False
        return True


class LockMonitor:
    """Samples pg_stat_activity: reader sessions waiting on a lock (every 20 ms)."""

    def __init__(self, bench: Bench, stop: threading.Event):
        self.conn = bench.connect("lock-monitor")
        self.stop = stop
        self.seen: dict = {"polls": 0, "waiting_observations": 0, "max_waiting": 0, "events": set()}
        self.thread = threading.Thread(target=self._loop, daemon=True, name="bench-lock-monitor")

    def _loop(self) -> None:
        seen = self.seen
        while not self.stop.is_set():
            rows = self.conn.execute(
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

    def result(self) -> dict:
        """What was seen, once the monitor has stopped (the wait events sorted)."""
        self.seen["events"] = sorted(self.seen["events"])
        return self.seen


def with_readers(
    bench: Bench, count: int, think_s: float, body: Callable[[], list[Phase]]
) -> tuple[list[Sample], dict, dict, list[Phase]]:
    """Runs ``body`` while ``count`` readers loop; returns their samples, counters, the lock
    monitor's observations and the phases ``body`` reports."""
    stop = threading.Event()
    readers = Readers(bench, count, think_s=think_s, stop=stop)
    monitor = LockMonitor(bench, stop)
    threads = [*readers.threads, monitor.thread]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)  # readers warm
        phases = body()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        bench.release([*readers.conns, monitor.conn])
    samples = [s for per in readers.samples for s in per]
    return samples, readers.counters, monitor.result(), phases
