"""One run from start to finish: options checked, scratch database, scenarios, report.

The programmatic entry point (:func:`run_bench`), which the command line and the tests
share; it owns the order of things and what is cleaned up when one of them fails.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

from efir_pipeline.cli.bench.database import admin_url_from_environment, scratch_database
from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.options import BenchError, BenchOptions
from efir_pipeline.cli.bench.report import build_report, print_report, server_facts, summarize
from efir_pipeline.cli.bench.scenarios import SCENARIOS


def run_bench(
    options: BenchOptions,
    *,
    server_url: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> dict:
    """Run everything on a scratch database of ``server_url``'s server; return the report."""
    out = out or sys.stdout
    err = err or sys.stderr
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[bench +{time.perf_counter() - started:6.1f}s] {message}", file=err, flush=True)

    options = dataclasses.replace(options, scenarios=options.scenarios or tuple(SCENARIOS))
    check_options(options)
    started_embedded = False
    if server_url is None:
        server_url, started_embedded = admin_url_from_environment()
    try:
        report = _measure(options, server_url, say, started)
    finally:
        if started_embedded:
            from efir_pipeline.core.db import embedded

            embedded.stop()
    print_report(report, out, options.json_path)
    return report


def check_options(options: BenchOptions) -> None:
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        raise BenchError(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    if options.repeat < 1 or options.readers < 1 or options.refresh_readers < 1:
        raise BenchError("--repeat, --readers and --refresh-readers must be at least 1")
    if options.duration <= 0:
        raise BenchError("--duration must be positive")


def run_scenarios(bench: Bench) -> None:
    """The selected scenarios, in :data:`SCENARIOS` order, each one's seconds recorded."""
    for name, scenario in SCENARIOS.items():
        if name in bench.options.scenarios:
            t0 = time.perf_counter()
            scenario(bench)
            bench.meta.setdefault("scenario_seconds", {})[name] = round(time.perf_counter() - t0, 1)


def _measure(
    options: BenchOptions, server_url: str, say: Callable[[str], None], started: float
) -> dict:
    with scratch_database(server_url, keep=options.keep, say=say) as url:
        bench = Bench(url, options, say)
        bench.meta["database"] = urlsplit(url).path.lstrip("/")
        try:
            bench.prepare()
            run_scenarios(bench)
            server = server_facts(url)
        finally:
            bench.close()
        rows = summarize(bench.measurements)
        return build_report(options, meta=bench.meta, server=server, rows=rows, started=started)
