"""The benchmark runs end to end at a tiny size, so it never rots.

No timing is asserted: CI machines vary. What is asserted is that every scenario
ran and produced sane figures, that readers never waited on a lock during a
CONCURRENTLY refresh, and that the scratch database is gone afterwards.
"""

from __future__ import annotations

import io
import json

import psycopg
import pytest

from efir_pipeline.cli import bench
from efir_pipeline.cli import main as cli
from efir_pipeline.core import catalog


def test_percentile_interpolates_like_numpy():
    assert bench.percentile([], 0.5) is None
    assert bench.percentile([3.0], 0.95) == 3.0
    assert bench.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert bench.percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)


def test_cli_has_the_bench_subcommand():
    args = cli.build_parser().parse_args(
        ["bench", "--orgs", "3", "--versions-per-org", "4", "--repeat", "2", "--only", "reads"]
    )
    assert args.handler is bench.cmd_bench
    assert (args.orgs, args.versions_per_org, args.repeat) == (3, 4, 2)
    defaults = cli.build_parser().parse_args(["bench"])
    assert (defaults.scale, defaults.readers, defaults.duration) == ("network", 50, 10.0)


@pytest.mark.scale
def test_bench_runs_every_scenario_at_small_size(server_url, tmp_path):
    path = tmp_path / "bench.json"
    options = bench.BenchOptions(
        orgs=3,
        versions_per_org=4,
        repeat=3,
        readers=5,
        duration=1.0,
        refresh_readers=3,
        json_path=str(path),
    )
    out, err = io.StringIO(), io.StringIO()
    report = bench.run_bench(options, server_url=server_url, out=out, err=err)

    assert json.loads(path.read_text())["results"] == json.loads(
        json.dumps(report["results"], default=str)
    )
    assert report["setup"]["demo_data"]["versions"] == 12
    rows = report["results"]
    scenarios = {r["scenario"] for r in rows}
    expected = {
        "read.one_version",
        "read.fiscal_year",
        "read.fiscal_year.server",
        "read.consolidation",
        "readers_during_refresh",
        "change_to_visible",
        "concurrent_readers",
        *(f"refresh.{v.name}" for v in catalog.VIEWS),
    }
    assert scenarios == expected
    for scenario in expected:  # exactly one baseline each, to compute the ratios against
        assert sum(r["baseline"] for r in rows if r["scenario"] == scenario) == 1, scenario

    for r in rows:
        if not r["available"]:
            assert r["n"] == 0 and r["notes"].startswith("n/a"), r
            continue
        label = f"{r['scenario']} / {r['variant']}"
        assert r["n"] > 0, label
        assert r["p50_ms"] > 0, label
        assert r["p95_ms"] >= r["p50_ms"], label
        assert r["max_ms"] >= r["p95_ms"], label
        assert r["baseline"] or r["speedup_vs_baseline_p50"] > 0, label

    # The incremental variant exists exactly when the catalog makes the view per_version.
    incremental = next(
        r for r in rows if r["scenario"] == "change_to_visible" and "incremental" in r["variant"]
    )
    kpi = catalog.get_view("mv_kpi_dashboard")
    assert incremental["available"] == kpi.incremental

    # Readers never wait on the refresh: no lock timeout, no error, no lock wait seen.
    during = next(
        r
        for r in rows
        if r["scenario"] == "readers_during_refresh" and r["variant"].startswith("during refresh")
    )
    assert during["extra"]["lock_timeouts"] == 0
    assert during["extra"]["errors"] == 0, during["extra"]["last_error"]
    assert during["extra"]["lock_monitor"]["waiting_observations"] == 0
    assert during["extra"]["lock_monitor"]["polls"] > 0
    for r in (r for r in rows if r["scenario"] == "concurrent_readers" and r["available"]):
        assert r["extra"]["lock_timeouts"] == 0 and r["extra"]["errors"] == 0
        assert r["extra"]["lock_waits_seen"] == 0
        assert r["extra"]["queries_per_second"] > 0

    verdicts = {t["target"]: t["met"] for t in report["targets"]}
    assert len(verdicts) == 5
    assert verdicts["no reader waits on a lock (lock_timeout 100ms + pg_stat_activity)"] is True

    printed = out.getvalue()
    assert "p50 ms" in printed and "p95 ms" in printed and "targets" in printed
    assert "dropped scratch database" in err.getvalue()
    with psycopg.connect(server_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (report["setup"]["database"],)
        ).fetchone()[0]
    assert left == 0


def test_scratch_database_is_dropped_when_the_run_fails(server_url, monkeypatch):
    created = []

    def fail(self):
        created.append(self.url)
        raise bench.BenchError("boom")

    monkeypatch.setattr(bench.Bench, "prepare", fail)
    with pytest.raises(bench.BenchError, match="boom"):
        bench.run_bench(
            bench.BenchOptions(orgs=1, json_path=None), server_url=server_url, err=io.StringIO()
        )
    name = created[0].rsplit("/", 1)[1]
    with psycopg.connect(server_url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
