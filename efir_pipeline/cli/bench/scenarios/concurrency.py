"""Many dashboard readers at once: throughput and latency, vs one reader.

N readers (a connection each) run a closed loop, bounded in time, alternating with a
single reader. Python threads share one GIL and the machine's cores with the server, so
the psycopg figures are partly the client's; pgbench (a C client, when installed) runs
the same query to show what the server does with N clients.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.measure import Measurement
from efir_pipeline.cli.bench.options import (
    KPI_VIEW,
    READER_APP,
    READER_LOCK_TIMEOUT,
    BenchError,
)
from efir_pipeline.cli.bench.workload import LockMonitor, Phase, with_readers
from efir_pipeline.core import catalog

SCENARIO = "concurrent_readers"


def measure_concurrency(bench: Bench) -> None:
    """N readers vs one, closed loop, bounded in time; and N readers from pgbench."""
    o = bench.options
    label = f"{o.readers} concurrent dashboard readers (one-version query)"
    pgbench = shutil.which("pgbench")
    bench.say(
        f"{label}: {o.duration:.0f}s of {o.readers} readers, interleaved with 1 reader"
        + (" and pgbench" if pgbench else "")
    )
    results = _measurements(bench, label, available=pgbench is not None)
    totals = {
        key: {"queries": 0, "seconds": 0.0, "lock_timeouts": 0, "errors": 0, "lock_waits_seen": 0}
        for key in results
    }
    # Twice, alternating: N readers duration/2, one reader and pgbench duration/4 each.
    plan = [("many", o.readers, o.duration / 2), ("one", 1, o.duration / 4)]
    if pgbench:
        plan.append(("pgbench", o.readers, o.duration / 4))
    for key, n, seconds in plan * 2:
        if key == "pgbench" and pgbench:
            latencies, counts = _pgbench_window(bench, pgbench, n, seconds)
        else:
            latencies, counts = _psycopg_window(bench, n, seconds)
        results[key].samples_ms.extend(latencies)
        for name, value in counts.items():
            totals[key][name] += value
    _describe(results, totals)


def _measurements(bench: Bench, label: str, *, available: bool) -> dict[str, Measurement]:
    o = bench.options
    variants = {
        "one": "1 reader, closed loop (psycopg)",
        "many": f"{o.readers} readers, closed loop (psycopg, a connection each)",
        "pgbench": f"{o.readers} readers, pgbench -M prepared (C client)",
    }
    results = {
        key: bench.add(Measurement(SCENARIO, label, name, baseline=key == "one"))
        for key, name in variants.items()
    }
    if not available:
        results["pgbench"].available = False
        results["pgbench"].notes = "n/a: pgbench is not installed"
    return results


def _describe(results: dict[str, Measurement], totals: dict[str, dict]) -> None:
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


def _psycopg_window(bench: Bench, readers: int, seconds: float) -> tuple[list[float], dict]:
    """``readers`` threads for ``seconds``: the latencies of the queries wholly inside."""

    def body() -> list[Phase]:
        t0 = time.perf_counter()
        time.sleep(seconds)
        return [(t0, time.perf_counter(), "window")]

    samples, counters, seen, phases = with_readers(bench, readers, 0.0, body)
    ((a, b, _),) = phases
    inside = [(s, e) for s, e in samples if s >= a and e <= b]
    counts = {
        "queries": len(inside),
        "seconds": b - a,
        "lock_timeouts": counters["lock_timeouts"],
        "errors": counters["errors"],
        "lock_waits_seen": seen["waiting_observations"],
    }
    return [(e - s) * 1000 for s, e in inside], counts


def _pgbench_window(
    bench: Bench, pgbench: str, clients: int, seconds: float
) -> tuple[list[float], dict]:
    """pgbench over the one-version query for ``seconds`` (whole seconds, at least 1)."""
    _version_table(bench)
    whole = max(1, round(seconds))
    with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp:
        script = _script(Path(tmp), len(bench.sample))
        stop = threading.Event()
        monitor = LockMonitor(bench, stop)
        monitor.thread.start()
        try:
            done = _run_pgbench(bench, pgbench, clients, whole, script, tmp)
        finally:
            stop.set()
            monitor.thread.join(timeout=60)
            bench.release([monitor.conn])
        latencies = _latencies(Path(tmp))
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    aborted = re.findall(r"client \d+ aborted", done.stderr)
    errors_seen = (int(failed.group(1)) if failed else 0) + len(aborted)
    if done.returncode not in (0, 2) or not latencies:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"pgbench failed (exit {done.returncode}): {detail}")
    counts = {
        "queries": len(latencies),
        "seconds": whole,
        "errors": errors_seen,
        "lock_waits_seen": monitor.result()["waiting_observations"],
    }
    return latencies, counts


def _version_table(bench: Bench) -> None:
    """The sampled versions numbered 1..n, so pgbench can pick one with ``random()``."""
    with psycopg.connect(bench.url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.bench_versions (n int PRIMARY KEY, id uuid)"
        )
        if not conn.execute("SELECT count(*) FROM public.bench_versions").fetchone()[0]:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO public.bench_versions VALUES (%s, %s)",
                    list(enumerate(bench.sample, start=1)),
                )
            conn.execute("ANALYZE public.bench_versions")


def _script(tmp: Path, versions: int) -> Path:
    kpi = catalog.get_view(KPI_VIEW)
    script = tmp / "read.sql"
    script.write_text(
        f"\\set r random(1, {versions})\n"
        f"SELECT k.* FROM {kpi.qualified_name} k WHERE k.budget_version_id = "
        "(SELECT id FROM public.bench_versions WHERE n = :r);\n"
    )
    return script


def _run_pgbench(
    bench: Bench, pgbench: str, clients: int, seconds: int, script: Path, tmp: str
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PGAPPNAME": READER_APP,
        "PGOPTIONS": f"-c lock_timeout={READER_LOCK_TIMEOUT} -c statement_timeout=60s",
    }
    command = [
        pgbench,
        "-n",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(seconds),
        "-M",
        "prepared",
        "-f",
        str(script),
        "-l",
        f"--log-prefix={tmp}/log",
        bench.url,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=seconds + 120, check=False
    )


def _latencies(tmp: Path) -> list[float]:
    """Per-transaction latencies (ms) from pgbench's logs."""
    latencies = []
    for log in tmp.glob("log*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():  # failed ones log "failed"
                latencies.append(int(fields[2]) / 1000)
    return latencies
