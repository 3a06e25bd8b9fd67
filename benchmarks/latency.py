"""How long a budget version's status change takes to reach the KPI dashboard, end to end.

Run: ``.venv/bin/python benchmarks/latency.py [--changes N] [--database-url URL] [--keep]
[--json PATH]``.

Why: the refresh engine's own figures (``efir-pipeline bench``, ``duration_seconds`` in
``efir_budget.mv_refresh_log``) time the REFRESH statement only. What a user of the
dashboard waits for is everything between the app's commit and the new row being
readable: the high-priority sensor's tick, the run queue, the run worker's start, the
refresh itself and its commit. This script measures that whole path against the real
thing, ``efir-pipeline start`` (webserver + daemon, default settings), and prints it
next to the SQL time of the same refreshes, so the ratio says how much is waiting.

How:

1. A scratch database ``efir_latency_<random>`` on the server of ``--database-url``
   (default ``$DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/postgres``)
   and a fresh data folder under /tmp (``EFIR_DATA_DIR``: Dagster's home lives in it,
   so the user's run history is never touched); a free port for the UI. Every
   inherited ``EFIR_*`` setting is dropped, so the defaults are what is measured.
2. ``efir-pipeline start`` (the one next to this interpreter: run the script with the
   venv whose code you want to measure) in a process group of its own, its output in
   ``<data folder>/efir-pipeline.log``. It migrates, loads the demo data and refreshes
   every view, then runs ``dagster dev``. We wait for the first ``mv_kpi_dashboard``
   refresh, for the code location to load (polled as ``efir-pipeline start`` does) and
   then ``--settle`` seconds more, so start-up runs are out of the way.
3. ``--changes`` times: a live version shown in ``mv_kpi_dashboard`` gets another
   status (``UPDATE ... SET status, updated_at`` committed); the view is polled every
   50 ms until its row shows the new status (``--timeout``; timeouts are counted, not
   averaged). A seeded random pause (``--pause``, 1-4 s) between changes keeps them
   from a fixed rhythm. Caveat: a change waits for the previous one's refresh, which a
   tick launched, so a short pause still puts every change at about the same point of
   the sensor's cycle (just after a run), where the wait for the next tick is longest.
   A pause spread over a whole interval (``--pause 1 31`` for 30 s ticks) samples the
   cycle evenly: the latency of a change made at a random moment.
4. For each change, the refresh that made it visible (the first successful
   ``mv_kpi_dashboard`` refresh whose snapshot contains the change's transaction) and
   its Dagster run give the split: sensor wait, run launch, wait for the view, SQL.
5. One table (median, nearest-rank p95, min, max), optionally JSON (``--json``); then
   the pipeline is stopped (SIGINT to its process groups, SIGKILL to what remains) and
   the database and data folder are removed, also on Ctrl-C or an error (``--keep``
   keeps both, e.g. to read the log).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from efir_pipeline.cli.dev_server import LOCATION_NAME, graphql, location_status

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
VIEW = "mv_kpi_dashboard"
HIGH_SENSOR = "refresh_views_on_high_priority_changes"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a dg.Definitions
POLL_S = 0.05
STOP_TIMEOUT_S = 60.0  # efir-pipeline start itself waits up to 30 s + 5 s + 5 s
LOG_NAME = "efir-pipeline.log"

_SENSORS_QUERY = """
query ($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) { __typename
    ... on Sensors { results { name minIntervalSeconds sensorState { status } } }
    ... on PythonError { message } } }
"""
_RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { creationTime startTime endTime } } }
"""

_STARTED = time.monotonic()


class BenchmarkError(Exception):
    """The benchmark cannot go on (the pipeline died, never came up, ...)."""


@dataclass
class Change:
    """One status change and what it took to reach the dashboard (seconds)."""

    version_id: str
    old_status: str
    new_status: str
    end_to_end: float | None = None
    """Commit to the first poll showing the new status; None: timed out."""
    trigger: str | None = None
    run_id: str | None = None
    sql: float | None = None
    """duration_seconds of the refresh that made the change visible."""
    sensor: float | None = None
    """Commit to the Dagster run's creation (the sensor's tick)."""
    launch: float | None = None
    """Run created to the engine's refresh request (queue, worker start, step start)."""
    before_sql: float | None = None
    """Refresh requested to its REFRESH statement starting (view lock, bookkeeping)."""
    after_sql: float | None = None
    """REFRESH statement done to the poll seeing it (commit, bookkeeping, poll step)."""


# --- output ----------------------------------------------------------------------------


def progress(message: str) -> None:
    """One line per step, with the time since the script started (stderr: the table
    and nothing else goes to stdout)."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def where(url: str) -> str:
    """host:port/db of a URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


# --- scratch resources -----------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(server_url: str, keep: bool) -> Iterator[str]:
    """A new empty database on the server; dropped afterwards (even after Ctrl-C)."""
    name = f"efir_latency_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    progress(f"created database {where(url)}")
    try:
        yield url
    finally:
        if keep:
            progress(f"kept database {where(url)}")
        else:
            with psycopg.connect(server_url, autocommit=True) as conn:
                drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
                conn.execute(sql.SQL(drop).format(sql.Identifier(name)))
            progress(f"dropped database {name}")


@contextlib.contextmanager
def scratch_folder(keep: bool) -> Iterator[Path]:
    """The pipeline's data folder (Dagster home, log) under /tmp, never the user's."""
    folder = Path(tempfile.mkdtemp(prefix="efir_latency_", dir="/tmp"))
    try:
        yield folder
    finally:
        if keep:
            progress(f"kept data folder {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS picks it; a race with another process
    binding it before dagster dev does is possible but harmless: start fails loudly)."""
    with socket.create_server((host, 0)) as server:
        return server.getsockname()[1]


# --- the pipeline process --------------------------------------------------------------


def efir_executable() -> str:
    """``efir-pipeline`` of this interpreter's environment, so the code measured is the
    one this script runs with (e.g. a worktree's venv), whatever PATH says."""
    exe = Path(sys.executable).parent / "efir-pipeline"
    if not exe.exists():
        raise BenchmarkError(f"{exe} not found: run this script with the project's venv python")
    return str(exe)


def pipeline_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The inherited environment minus every EFIR_* setting (defaults are measured) and
    DAGSTER_HOME (start derives it from the data folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIR_")}
    env.pop("DAGSTER_HOME", None)
    env.update(DATABASE_URL=database_url, EFIR_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def start_pipeline(database_url: str, data_dir: Path, port: int) -> subprocess.Popen:
    """``efir-pipeline start`` in a session of its own: Ctrl-C in our terminal reaches
    only us, and we stop it in order (see :func:`stop_pipeline`)."""
    log = (data_dir / LOG_NAME).open("ab")
    try:
        return subprocess.Popen(
            [efir_executable(), "start", "--host", HOST, "--port", str(port)],
            cwd=data_dir,
            env=pipeline_env(database_url, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command) of every live process (Linux /proc;
    zombies are left out: they are dead already, only not reaped yet)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[3]), cmdline.strip())
    return table


def descendant_sessions(root: int) -> set[int]:
    """Sessions of ``root`` and its descendants: ``dagster dev`` runs in a session of its
    own below ``efir-pipeline start``, and its daemon's run workers in that session."""
    table = _proc_table()
    sessions, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, sid, _) in table.items():
            if ppid == parent:
                sessions.add(sid)
                frontier.append(pid)
    return sessions


def kill_sessions(sessions: set[int]) -> list[str]:
    """SIGKILL every process still in one of ``sessions``; return what was killed."""
    killed = []
    for pid, (_, sid, command) in _proc_table().items():
        if sid in sessions and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} {command[:100]}")
    return killed


def stop_pipeline(proc: subprocess.Popen) -> None:
    """SIGINT to start's process group (it then stops dagster dev in order and marks
    interrupted runs failed), wait, then SIGKILL whatever is left in any session it
    created (noted before the SIGINT: orphans lose their parent link)."""
    sessions = descendant_sessions(proc.pid) if proc.poll() is None else {proc.pid}
    progress("stopping efir-pipeline start ...")
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        progress(f"still running after {STOP_TIMEOUT_S:.0f}s")
    finally:
        killed = kill_sessions(sessions)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    progress(f"stopped in {time.monotonic() - started:.1f}s (exit {proc.returncode})")
    for line in killed:
        progress(f"killed a leftover process: {line}")


def log_tail(data_dir: Path, lines: int = 30) -> str:
    """The end of the pipeline's output, for an error message."""
    try:
        text = (data_dir / LOG_NAME).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def require_alive(proc: subprocess.Popen) -> None:
    """Stop waiting at once when the pipeline died (rather than at a timeout)."""
    if proc.poll() is not None:
        raise BenchmarkError(f"efir-pipeline start exited with status {proc.returncode}")


# --- waiting for start-up --------------------------------------------------------------


def wait_for_first_refresh(conn: psycopg.Connection, proc: subprocess.Popen, timeout: float):
    """Until ``prepare`` has recorded a successful refresh of the view (the schema may
    not exist yet: migrations run in the child)."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT trigger, duration_seconds, row_count FROM efir_budget.mv_refresh_log "
        "WHERE view_name = %s AND outcome = 'success' ORDER BY id LIMIT 1"
    )
    while True:
        require_alive(proc)
        try:
            row = conn.execute(query, (VIEW,)).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        if row:
            return row
        if time.monotonic() > deadline:
            raise BenchmarkError(f"no refresh of {VIEW} within {timeout:.0f}s")
        time.sleep(0.5)


def wait_for_location(base_url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Until the UI serves the code location loaded (what ``efir-pipeline start`` waits
    for before saying the UI is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        require_alive(proc)
        status, error = location_status(base_url)
        if error:
            raise BenchmarkError(f"code location {LOCATION_NAME} failed to load: {error}")
        if status == "LOADED":
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the Dagster UI did not load within {timeout:.0f}s")
        time.sleep(0.25)


def high_sensor(base_url: str) -> str:
    """The high-priority sensor's state and interval as the UI reports them: if it is
    not running, every change would time out, so say so up front."""
    selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY}
    try:
        data = graphql(base_url, _SENSORS_QUERY, {"selector": selector})["sensorsOrError"]
    except (OSError, RuntimeError, ValueError) as exc:
        return f"unknown ({exc})"
    for sensor in data.get("results", []):
        if sensor["name"] == HIGH_SENSOR:
            status = sensor["sensorState"]["status"]
            return f"{status}, every {sensor['minIntervalSeconds']}s"
    return f"not found ({data.get('message', data['__typename'])})"


def start_up(args, database_url: str, proc: subprocess.Popen, base_url: str) -> None:
    """Every wait before the first change, each reported with its time."""
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        trigger, seconds, rows = wait_for_first_refresh(conn, proc, args.startup_timeout)
    progress(
        f"first refresh of {VIEW} ({trigger}): {seconds:.3f}s SQL, {rows} rows "
        f"(prepare took {time.monotonic() - started:.1f}s)"
    )
    remaining = max(args.startup_timeout - (time.monotonic() - started), 1.0)
    wait_for_location(base_url, proc, remaining)
    progress(f"Dagster UI loaded at {base_url} ({time.monotonic() - started:.1f}s after launch)")
    progress(f"sensor {HIGH_SENSOR}: {high_sensor(base_url)}")
    progress(f"settling for {args.settle:.0f}s (start-up ticks and runs) ...")
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        require_alive(proc)
        time.sleep(0.5)


# --- one change ------------------------------------------------------------------------


def statuses(conn: psycopg.Connection) -> list[str]:
    """The values of the app's status enum (not hard-coded: the app owns the type)."""
    query = "SELECT unnest(enum_range(NULL::efir_budget.budgetversionstatus))::text"
    return [row[0] for row in conn.execute(query)]


def pick_change(conn: psycopg.Connection, rng: random.Random, values: list[str]) -> Change:
    """A live version whose dashboard row is up to date, and a different status."""
    rows = conn.execute(
        """SELECT v.id::text, v.status::text
           FROM efir_budget.budget_versions v
           JOIN efir_budget.mv_kpi_dashboard k ON k.budget_version_id = v.id
           WHERE v.deleted_at IS NULL AND k.status = v.status
           ORDER BY v.id"""
    ).fetchall()
    if not rows:
        raise BenchmarkError(f"no live budget version in {VIEW}")
    version_id, old = rng.choice(rows)
    return Change(version_id, old, rng.choice([s for s in values if s != old]))


def apply_change(conn: psycopg.Connection, change: Change) -> tuple[float, float, datetime, int]:
    """Commit the status change; return (monotonic and wall time right after the commit,
    the server's clock then, the transaction id: what a refresh's snapshot contains)."""
    xid = conn.execute(
        """UPDATE efir_budget.budget_versions SET status = %s, updated_at = now()
           WHERE id = %s RETURNING pg_current_xact_id()::text::bigint""",
        (change.new_status, change.version_id),
    ).fetchone()[0]
    conn.commit()
    committed, wall = time.monotonic(), time.time()
    server_time = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    conn.commit()
    return committed, wall, server_time, xid


def wait_visible(
    conn: psycopg.Connection, change: Change, committed: float, timeout: float, proc
) -> float | None:
    """Seconds from the commit until the view shows the new status; None on timeout."""
    query = f"SELECT status::text FROM efir_budget.{VIEW} WHERE budget_version_id = %s"
    while True:
        row = conn.execute(query, (change.version_id,)).fetchone()
        now = time.monotonic()
        if row and row[0] == change.new_status:
            return now - committed
        if now - committed > timeout:
            return None
        require_alive(proc)
        time.sleep(POLL_S)


def reflecting_refresh(conn: psycopg.Connection, xid: int) -> dict | None:
    """The first successful refresh of the view whose snapshot contains the change (its
    log row commits with the refresh, so it exists once the row is visible)."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT trigger, run_id, requested_at, snapshot_at, finished_at, duration_seconds
           FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success' AND reflected_snapshot IS NOT NULL
             AND pg_visible_in_snapshot(%s::text::xid8, reflected_snapshot)
           ORDER BY snapshot_at, id LIMIT 1""",
        (VIEW, xid),
    ).fetchone()


def run_created(base_url: str, run_id: str | None) -> float | None:
    """When Dagster created the run (unix time), i.e. when the sensor's tick asked."""
    if not run_id:
        return None
    try:
        run = graphql(base_url, _RUN_QUERY, {"runId": run_id})["runOrError"]
    except (OSError, RuntimeError, ValueError):
        return None
    return run.get("creationTime")


def explain(change: Change, refresh: dict | None, wall: float, server_time, base_url: str):
    """Split the end-to-end time with the refresh log (server clock) and the run's
    creation (this machine's clock): differences only, never across the two clocks."""
    if refresh is None:
        return
    change.trigger, change.run_id = refresh["trigger"], refresh["run_id"]
    change.sql = refresh["duration_seconds"]
    to_request = (refresh["requested_at"] - server_time).total_seconds()
    to_sql = (refresh["snapshot_at"] - server_time).total_seconds()
    change.before_sql = to_sql - to_request
    change.after_sql = change.end_to_end - to_sql - change.sql
    created = run_created(base_url, change.run_id)
    if created is not None:
        change.sensor = created - wall
        change.launch = to_request - change.sensor


def measure(args, database_url: str, base_url: str, proc: subprocess.Popen) -> list[Change]:
    """The N changes, one at a time, each waited for before the next."""
    rng = random.Random(args.seed)
    changes = []
    with (
        psycopg.connect(database_url) as writer,
        psycopg.connect(database_url, autocommit=True) as reader,
    ):
        values = statuses(reader)
        for i in range(1, args.changes + 1):
            change = pick_change(reader, rng, values)
            committed, wall, server_time, xid = apply_change(writer, change)
            change.end_to_end = wait_visible(reader, change, committed, args.timeout, proc)
            if change.end_to_end is not None:
                explain(change, reflecting_refresh(reader, xid), wall, server_time, base_url)
            changes.append(change)
            progress(describe(i, args.changes, change))
            if i < args.changes:
                time.sleep(rng.uniform(*args.pause))
    return changes


def describe(i: int, n: int, change: Change) -> str:
    """The progress line of one change: enough to spot an outlier while it runs."""
    head = f"change {i}/{n}: {change.version_id[:8]} {change.old_status} -> {change.new_status}"
    if change.end_to_end is None:
        return f"{head}: TIMEOUT"
    parts = [f"visible after {change.end_to_end:.2f}s"]
    if change.sql is not None:
        parts.append(f"SQL {change.sql:.3f}s")
    if change.sensor is not None:
        parts.append(f"sensor {change.sensor:.1f}s, launch {change.launch:.1f}s")
    if change.trigger:
        parts.append(f"{change.trigger} run {(change.run_id or '-')[:8]}")
    return f"{head}: " + ", ".join(parts)


# --- report ----------------------------------------------------------------------------

PHASES = (
    ("end_to_end", "end-to-end: commit -> row visible"),
    ("sensor", "  sensor: commit -> run created"),
    ("launch", "  launch: run created -> refresh asked"),
    ("before_sql", "  refresh asked -> SQL starts"),
    ("sql", "  refresh SQL (duration_seconds)"),
    ("after_sql", "  SQL done -> row seen (poll 50ms)"),
)


def nearest_rank(values: list[float], percent: float) -> float:
    """The nearest-rank percentile: always a measured value, no interpolation."""
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)), 1) - 1]


def stats(values: list[float]) -> dict | None:
    """n, median, p95, min, max of one phase; None when nothing was measured."""
    if not values:
        return None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": nearest_rank(values, 95),
        "min": min(values),
        "max": max(values),
    }


def summarize(changes: list[Change]) -> dict:
    """Figures per phase over the changes that made it, plus n, timeouts and the ratio."""
    phases = {
        key: stats([v for c in changes if (v := getattr(c, key)) is not None]) for key, _ in PHASES
    }
    e2e, sql_ = phases["end_to_end"], phases["sql"]
    ratio = e2e["median"] / sql_["median"] if e2e and sql_ and sql_["median"] > 0 else None
    return {
        "view": VIEW,
        "n": len(changes),
        "timeouts": sum(c.end_to_end is None for c in changes),
        "phases_seconds": phases,
        "ratio_median_end_to_end_to_median_sql": ratio,
        "changes": [asdict(c) for c in changes],
    }


def render(summary: dict) -> str:
    """The one table: a row per phase, then n, timeouts and the ratio."""

    def cell(value: float) -> str:
        return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"

    lines = [f"{'latency to ' + VIEW:<40} {'n':>3} {'median':>9} {'p95':>9} {'min':>9} {'max':>9}"]
    for key, label in PHASES:
        s = summary["phases_seconds"][key]
        if s is None:
            lines.append(f"{label:<40} {0:>3} {'-':>9} {'-':>9} {'-':>9} {'-':>9}")
            continue
        figures = " ".join(f"{cell(s[k]):>9}" for k in ("median", "p95", "min", "max"))
        lines.append(f"{label:<40} {s['n']:>3} {figures}")
    ratio = summary["ratio_median_end_to_end_to_median_sql"]
    lines.append(
        f"changes {summary['n']}, timeouts {summary['timeouts']}, "
        f"median end-to-end / median SQL = {f'{ratio:.0f}x' if ratio else '-'}"
    )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; the defaults are the ones the "before" figures were measured with."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="status changes (20)")
    parser.add_argument(
        "--database-url",
        help="server to create the scratch database on (default: $DATABASE_URL, else "
        f"{DEFAULT_SERVER_URL})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and data folder")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--timeout", type=float, default=120.0, help="per change, seconds (120)")
    parser.add_argument("--settle", type=float, default=10.0, help="after start-up, seconds (10)")
    parser.add_argument(
        "--startup-timeout", type=float, default=900.0, help="prepare + UI, seconds (900)"
    )
    parser.add_argument("--seed", type=int, default=1, help="versions, statuses, pauses (1)")
    parser.add_argument(
        "--pause",
        type=float,
        nargs=2,
        default=(1.0, 4.0),
        metavar=("MIN", "MAX"),
        help="random pause between changes, seconds (1 4)",
    )
    args = parser.parse_args(argv)
    # Resolved here, not as the default: --help must not print a password.
    args.database_url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_SERVER_URL
    if args.changes < 1:
        parser.error("--changes must be at least 1")
    if not 0 <= args.pause[0] <= args.pause[1]:
        parser.error("--pause needs 0 <= MIN <= MAX")
    return args


@contextlib.contextmanager
def running_pipeline(database_url: str, data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """``efir-pipeline start`` for the ``with`` block; on an error its log's tail is
    shown while the data folder still exists."""
    proc = start_pipeline(database_url, data_dir, port)
    progress(f"started efir-pipeline start (pid {proc.pid}, port {port}, data {data_dir})")
    try:
        yield proc
    except BenchmarkError:
        print(f"--- end of {data_dir / LOG_NAME} ---\n{log_tail(data_dir)}", file=sys.stderr)
        raise
    finally:
        stop_pipeline(proc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM/SIGHUP like Ctrl-C: unwind, so the pipeline is stopped and the DB dropped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    try:
        with (
            scratch_database(args.database_url, args.keep) as url,
            scratch_folder(args.keep) as data_dir,
            running_pipeline(url, data_dir, port) as proc,
        ):
            start_up(args, url, proc, base_url)
            progress(f"measuring {args.changes} status changes ...")
            changes = measure(args, url, base_url, proc)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    summary = summarize(changes)
    summary["options"] = {"seed": args.seed, "pause": list(args.pause), "timeout": args.timeout}
    print(render(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
