"""What change capture costs a writer: the same writes with and without its triggers.

Run: ``DATABASE_URL=postgresql://... .venv/bin/python benchmarks/trigger_overhead.py``
(unset: the embedded server). It creates a scratch database on that server, applies
the migrations, measures, and drops the database again (``--keep`` keeps it).

Measured side by side in one run, alternating which goes first in each round so
drift (caches, checkpoints, a busy neighbour) hits both alike; each round's ratio is
with/without for that round; p50 over the rounds is reported:

- bulk: one ``INSERT ... SELECT`` of ``--rows`` rows (10,000) into operating_cost_plans
  spread over ``--versions`` versions, committed (the table is emptied, untimed,
  before every measurement, so both sides insert into the same empty table);
- edit: ``--edits`` single-row UPDATE statements, each its own transaction (what the
  budget app does on a form save), timed by the client: the fixed cost of a
  statement-level trigger as the app sees it (round trip and commit included);
- edit, server side: the same UPDATEs in a server-side loop, timed by the server:
  the trigger's own cost per statement, without network or commit noise.

"Without" disables only the capture triggers of the table (foreign key triggers
stay), so the difference is exactly what capture adds. The session runs with
``synchronous_commit = off`` unless ``--sync-commit``: the WAL flush at commit is the
same on both sides and, on a shared disk, mostly adds noise to the comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from efir_pipeline.core.db import migrate
from efir_pipeline.core.db.connection import database_url

TABLE = "operating_cost_plans"
CAPTURE_TRIGGERS = ("efir_capture_insert", "efir_capture_update", "efir_capture_delete")


@contextmanager
def scratch_database(server_url: str, keep: bool):
    name = f"efir_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with psycopg.connect(server_url, autocommit=True) as c:
                c.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def set_capture(conn: psycopg.Connection, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    for trigger in CAPTURE_TRIGGERS:
        conn.execute(
            sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                sql.Identifier("efir_budget", TABLE), sql.SQL(action), sql.Identifier(trigger)
            )
        )
    conn.commit()


def setup(conn: psycopg.Connection, versions: int) -> list[uuid.UUID]:
    org = conn.execute(
        "INSERT INTO efir_budget.organizations (code, name) VALUES ('BENCH', 'Bench') RETURNING id"
    ).fetchone()[0]
    ids = [
        conn.execute(
            """INSERT INTO efir_budget.budget_versions
                   (organization_id, name, fiscal_year, academic_year, status)
               VALUES (%s, %s, %s, %s, 'forecast') RETURNING id""",
            (org, f"bench {i}", 2030 + i, f"{2029 + i}-{2030 + i}"),
        ).fetchone()[0]
        for i in range(versions)
    ]
    conn.commit()
    return ids


def reset(conn: psycopg.Connection) -> None:
    """Empty the table and the log, untimed (TRUNCATE: no dead rows left behind)."""
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier("efir_budget", TABLE)))
    conn.execute("TRUNCATE efir_budget.change_log")
    conn.commit()


def bulk_insert(conn: psycopg.Connection, versions: list[uuid.UUID], rows: int) -> float:
    reset(conn)
    started = time.perf_counter()
    conn.execute(
        """INSERT INTO efir_budget.operating_cost_plans
               (budget_version_id, account_code, category, amount_sar)
           SELECT (%(versions)s::uuid[])[1 + g %% cardinality(%(versions)s::uuid[])],
                  '60' || g, 'supplies', g
           FROM generate_series(1, %(rows)s) g""",
        {"versions": versions, "rows": rows},
    )
    conn.commit()
    return time.perf_counter() - started


def single_edits(conn: psycopg.Connection, versions: list[uuid.UUID], edits: int) -> float:
    reset(conn)
    conn.execute(
        """INSERT INTO efir_budget.operating_cost_plans
               (budget_version_id, account_code, category, amount_sar)
           SELECT %s, '60' || g, 'supplies', g FROM generate_series(1, %s) g""",
        (versions[0], edits),
    )
    conn.commit()
    ids = [r[0] for r in conn.execute("SELECT id FROM efir_budget.operating_cost_plans")]
    conn.commit()
    started = time.perf_counter()
    for row_id in ids:
        conn.execute(
            "UPDATE efir_budget.operating_cost_plans SET amount_sar = amount_sar + 1, "
            "updated_at = now() WHERE id = %s",
            (row_id,),
        )
        conn.commit()
    return (time.perf_counter() - started) / len(ids)


def server_side_edits(conn: psycopg.Connection, versions: list[uuid.UUID], edits: int) -> float:
    reset(conn)
    conn.execute(
        """INSERT INTO efir_budget.operating_cost_plans
               (budget_version_id, account_code, category, amount_sar)
           SELECT %s, '60' || g, 'supplies', g FROM generate_series(1, %s) g""",
        (versions[0], edits),
    )
    conn.commit()
    conn.execute(
        """DO $$
           DECLARE r uuid; t0 timestamptz := clock_timestamp();
           BEGIN
               FOR r IN SELECT id FROM efir_budget.operating_cost_plans LOOP
                   UPDATE efir_budget.operating_cost_plans
                   SET amount_sar = amount_sar + 1, updated_at = now() WHERE id = r;
               END LOOP;
               PERFORM set_config('efir_bench.seconds',
                                  extract(epoch FROM clock_timestamp() - t0)::text, false);
           END $$"""
    )
    seconds = float(conn.execute("SELECT current_setting('efir_bench.seconds')").fetchone()[0])
    conn.commit()
    return seconds / edits


def measure(
    conn: psycopg.Connection, work: Callable[[], float], rounds: int, warmup: int
) -> tuple[list[float], list[float]]:
    """(with capture, without capture) timings, alternating which side goes first."""
    with_capture, without_capture = [], []
    for i in range(warmup + rounds):
        order = (True, False) if i % 2 == 0 else (False, True)
        for enabled in order:
            set_capture(conn, enabled)
            elapsed = work()
            if i >= warmup:
                (with_capture if enabled else without_capture).append(elapsed)
    set_capture(conn, True)
    return with_capture, without_capture


def report(label: str, unit: str, scale: float, with_c: list[float], without_c: list[float]):
    ratios = [w / wo for w, wo in zip(with_c, without_c, strict=True)]
    p50_with, p50_without = statistics.median(with_c), statistics.median(without_c)
    print(
        f"{label:<34} {p50_with * scale:>10.3f} {p50_without * scale:>10.3f} {unit:<4} "
        f"{(p50_with - p50_without) * scale:>+9.3f} {statistics.median(ratios):>8.3f} "
        f"[{min(ratios):.3f}..{max(ratios):.3f}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="server URL (default: DATABASE_URL, else the embedded one)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=10, help="also measured: 1")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--sync-commit", action="store_true", help="keep synchronous_commit on (flush each commit)"
    )
    args = parser.parse_args(argv)

    with (
        scratch_database(args.url or database_url(), args.keep) as url,
        psycopg.connect(url) as conn,
    ):
        if not args.sync_commit:
            conn.execute("SET synchronous_commit = off")
        server = conn.execute("SHOW server_version").fetchone()[0]
        versions = setup(conn, max(args.versions, 1))
        print(
            f"PostgreSQL {server}; synchronous_commit {'on' if args.sync_commit else 'off'}; "
            f"{args.rounds} rounds (+{args.warmup} warm-up), "
            "alternating order; p50 of each side and of the per-round ratio with/without"
        )
        print(
            f"{'scenario':<34} {'with':>10} {'without':>10} {'':<4} {'added':>9} {'ratio':>8} [min..max]"
        )
        for n_versions in sorted({1, args.versions}):
            chosen = versions[:n_versions]
            w, wo = measure(
                conn, lambda c=chosen: bulk_insert(conn, c, args.rows), args.rounds, args.warmup
            )
            report(f"INSERT {args.rows:,} rows, {n_versions} version(s)", "ms", 1e3, w, wo)
            bulk_insert(conn, chosen, args.rows)  # once more, capture on: what it logs
            log_rows = conn.execute("SELECT count(*) FROM efir_budget.change_log").fetchone()[0]
            conn.commit()
            print(f"{'':<34} change_log rows written by it: {log_rows}")
        w, wo = measure(
            conn, lambda: single_edits(conn, versions, args.edits), args.rounds, args.warmup
        )
        report("single-row UPDATE, own txn", "us", 1e6, w, wo)
        w, wo = measure(
            conn, lambda: server_side_edits(conn, versions, args.edits), args.rounds, args.warmup
        )
        report("single-row UPDATE, server-side", "us", 1e6, w, wo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
