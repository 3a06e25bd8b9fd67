"""``efir-pipeline bench`` on the command line: its options, and the handler.

The options live with the benchmark rather than in ``cli.main``, which only asks this
module to add its subcommand.
"""

from __future__ import annotations

import argparse
import sys

from efir_pipeline.cli import demo_data
from efir_pipeline.cli.bench.options import BenchOptions
from efir_pipeline.cli.bench.runner import run_bench
from efir_pipeline.cli.bench.scenarios import SCENARIOS


def add_parser(commands) -> argparse.ArgumentParser:
    """The ``bench`` subcommand (called from cli.build_parser)."""
    bench = commands.add_parser(
        "bench",
        help="benchmark the views on a scratch database at network scale (dropped at the end)",
        description="Create a scratch database on the configured server, load demo data, "
        "measure view reads vs the live queries, refreshes, readers during refreshes, "
        "change-to-visible and concurrent readers; print one table and write JSON.",
    )
    _add_scale_arguments(bench)
    _add_run_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return bench


def _add_scale_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--scale",
        choices=sorted(demo_data.SCALES),
        default="network",
        help="demo data size (default: network = 600 schools x 20 versions)",
    )
    bench.add_argument("--orgs", type=_positive, help="number of schools (overrides --scale)")
    bench.add_argument("--versions-per-org", type=_positive, help="budget versions per school")
    bench.add_argument("--seed", type=int, default=42, help="demo data seed (default: 42)")


def _add_run_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--repeat", type=_positive, default=10, help="rounds per comparison (default: 10)"
    )
    bench.add_argument(
        "--readers", type=_positive, default=50, help="concurrent readers (default: 50)"
    )
    bench.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds of the concurrent-readers run (default: 10)",
    )
    bench.add_argument(
        "--refresh-readers",
        type=_positive,
        default=4,
        help="readers running during refreshes (default: 4)",
    )
    bench.add_argument(
        "--think-ms",
        type=float,
        default=5.0,
        help="pause between two reads of a reader during refreshes (default: 5)",
    )
    bench.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    bench.add_argument(
        "--json",
        default="bench-results.json",
        metavar="PATH",
        help="where to write the results (default: bench-results.json)",
    )
    bench.add_argument("--keep", action="store_true", help="keep the scratch database")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_bench(args: argparse.Namespace) -> int:
    orgs, versions = demo_data.SCALES[args.scale]
    if args.orgs:
        orgs, versions = args.orgs, args.versions_per_org or versions
    elif args.versions_per_org:
        versions = args.versions_per_org
    scenarios = tuple(s.strip() for s in args.only.split(",")) if args.only else ()
    options = BenchOptions(
        orgs=orgs,
        versions_per_org=versions,
        seed=args.seed,
        repeat=args.repeat,
        readers=args.readers,
        duration=args.duration,
        refresh_readers=args.refresh_readers,
        think_ms=args.think_ms,
        scenarios=scenarios,
        json_path=args.json,
        keep=args.keep,
        command="efir-pipeline " + " ".join(sys.argv[1:]),
    )
    run_bench(options)
    return 0
