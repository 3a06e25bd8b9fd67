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
- ``refresh.<view>``: every managed view. A ``full`` view: ``REFRESH ... CONCURRENTLY``
  vs plain with no data changed (and CONCURRENTLY after a one-version change, where a
  source row is easy to touch), plus the pipeline's own ``refresh_view(full=True)``. A
  ``per_version`` view (its materialized view reads a cache): ``refresh_view`` full and
  incremental (no change, and one version changed), the SQL statements over the cache,
  and the full recompute on a scratch copy built the ``full`` way.
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

Each scenario is a module of ``scenarios`` registered in ``SCENARIOS`` (the order a run
follows and the names ``--only`` accepts).
"""

from __future__ import annotations

from efir_pipeline.cli.bench.command import add_parser, cmd_bench
from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.measure import Measurement, Variant, percentile
from efir_pipeline.cli.bench.options import BenchError, BenchOptions
from efir_pipeline.cli.bench.runner import run_bench
from efir_pipeline.cli.bench.scenarios import SCENARIOS

__all__ = [
    "SCENARIOS",
    "Bench",
    "BenchError",
    "BenchOptions",
    "Measurement",
    "Variant",
    "add_parser",
    "cmd_bench",
    "percentile",
    "run_bench",
]
