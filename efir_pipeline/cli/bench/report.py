"""What a run reports: one table for people, one JSON document for the record.

Every figure is printed next to its scenario's baseline, and the JSON keeps what the
numbers depend on (scale, options, machine, server settings, view sizes) so two runs
can be compared, or a surprising one explained, later.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from efir_pipeline.cli import demo_data
from efir_pipeline.cli.bench.measure import Measurement
from efir_pipeline.cli.bench.options import BenchOptions
from efir_pipeline.cli.bench.targets import targets, verdict_lines
from efir_pipeline.cli.output import render
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA

SERVER_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "jit",
    "max_parallel_workers_per_gather",
    "max_connections",
    "synchronous_commit",
    "random_page_cost",
)


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


def server_facts(url: str) -> dict:
    """The server's version, the settings the figures depend on, each view's rows and size."""
    with psycopg.connect(url, autocommit=True) as conn:
        facts = {
            "version": conn.execute("SELECT version()").fetchone()[0],
            "server_version_num": conn.info.server_version,
        }
        for name in SERVER_SETTINGS:
            facts[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[
                0
            ]
        facts["views"] = {}
        for v in catalog.resolve_views():
            rows, size = conn.execute(
                sql.SQL("SELECT count(*), pg_total_relation_size({}::regclass) FROM {}").format(
                    sql.Literal(v.qualified_name), sql.Identifier(SCHEMA, v.name)
                )
            ).fetchone()
            facts["views"][v.name] = {"rows": rows, "size_bytes": size}
    return facts


def build_report(
    options: BenchOptions, *, meta: dict, server: dict, rows: list[dict], started: float
) -> dict:
    """The JSON document of a run (``started``: its ``time.perf_counter()`` at the start)."""
    return {
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
        # refresh_view(full=False) always exists now; the key stays for readers of the JSON.
        "incremental_refresh_available": True,
        "machine": machine_facts(),
        "server": server,
        "setup": meta,
        "results": rows,
        "targets": targets(rows),
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_report(report: dict, out: TextIO, json_path: str | None) -> None:
    """The table and the target verdicts on ``out``; the JSON to ``json_path`` if given."""
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
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nwrote {json_path}", file=out)
    out.flush()
