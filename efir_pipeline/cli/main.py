"""``efir-pipeline``: migrations, refreshes, state and demo data from the shell.

Errors are one line on stderr and a non-zero exit status (2: bad usage, an unknown
view or a bad setting; 3: database unreachable; 4: the database is not at the schema
revision this code needs; 1: anything else), so scripts and people both know what
happened. Every setting is validated before any command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from efir_pipeline.cli import bench
from efir_pipeline.cli.commands import db, setup, views
from efir_pipeline.core import settings
from efir_pipeline.core.errors import EfirError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings.current()  # every setting, validated once: a bad one exits 2 here
        return args.handler(args) or 0
    except EfirError as exc:
        print(f"efir-pipeline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected database or migration error: one line, -v for more
        if args.verbose:
            raise
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(
            f"efir-pipeline: error: {type(exc).__name__}: {detail} (use -v for details)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("efir-pipeline: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efir-pipeline",
        description="Keep the EFIR KPI materialized views fresh. The database is DATABASE_URL, "
        "or the embedded PostgreSQL under the project data folder when it is unset.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (db, views, setup):
        area.register(commands)
    bench.add_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
