"""``efir-pipeline start``: run the Dagster UI (``dagster dev``) on the project's data.

Why a wrapper rather than telling people to type ``dagster dev``:

- DAGSTER_HOME is a folder of the project data folder (``<data_dir>/dagster_home``)
  holding a copy of the repo's ``dagster.yaml``, so run history survives restarts and
  never mixes with another project's, with nothing to set by hand;
- when DATABASE_URL is unset, the embedded PostgreSQL started by this process must
  outlive every Dagster process, and all of them must use that one server: we hold
  the server and export its URL as DATABASE_URL to ``dagster dev`` and its children;
- stopping must stop everything: ``dagster dev`` runs in a process group of its own,
  Ctrl-C/SIGTERM/SIGHUP here become one orderly SIGINT to it, and whatever is still
  alive in its group afterwards (a run worker, a code server) is killed;
- a run killed that way must not block its view for good: it would stay STARTED and
  keep its pool slot (limit 1), so no later refresh of that view could start. We hold
  DAGSTER_HOME exclusively (a lock file), so any run still in progress there before
  we launch or after we stop is dead: it is marked failed and its slots are freed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from efir_pipeline.core.errors import ConfigError, EfirError
from efir_pipeline.core.settings import PROJECT_ROOT, data_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
LOCATION_NAME = "efir_pipeline"
WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
INSTANCE_FILE = PROJECT_ROOT / "dagster.yaml"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0

_LOCATION_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
    ... on PythonError { message } } }
"""


class _StopRequested(Exception):
    """SIGINT (Ctrl-C), SIGTERM or SIGHUP arrived: stop Dagster, then return."""


def dagster_home(base: Path | None = None) -> Path:
    return (base or data_dir()) / "dagster_home"


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Create DAGSTER_HOME and copy the repo's dagster.yaml into it (the repo file wins:
    edit that one, not the copy)."""
    home = home or dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_FILE, home / "dagster.yaml")
    return home


def check_port_free(host: str, port: int) -> None:
    """Fail before any work when the UI could not bind its port."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the Dagster UI on {host}:{port} ({exc.strerror or exc}); "
            "choose another with --port"
        ) from None


def ui_url(host: str, port: int) -> str:
    """The address a browser on this machine uses (a wildcard bind is reached on loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def dagster_dev_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "--workspace",
        str(WORKSPACE_FILE),
        "--host",
        host,
        "--port",
        str(port),
    ]


def child_env(database_url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["DAGSTER_HOME"] = str(home)
    # `dagster dev` warns it is superseded by `dg dev` (a separate package we do not use).
    quiet = "ignore:Function `dev_command` is superseded"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))
    return env


def lock_dagster_home(home: Path) -> int:
    """Take DAGSTER_HOME for this process (and the ``dagster dev`` it passes the fd to).

    Returns the locked file descriptor; the lock ends when every holder has exited.
    """
    fd = os.open(home / ".efir-start.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another efir-pipeline start is using {home}; stop it first "
            "(or use another EFIR_DATA_DIR)"
        ) from None
    return fd


def check_home_free(home: Path | None = None) -> None:
    """Fail before any work when another start holds DAGSTER_HOME (``run`` takes it for real)."""
    home = prepare_dagster_home(home)
    os.close(lock_dagster_home(home))


def fail_orphaned_runs(home: Path) -> list[str]:
    """Mark runs left in progress in DAGSTER_HOME as failed and free every pool slot.

    Only safe while no Dagster process uses ``home`` (the caller holds its lock): then
    a STARTING/STARTED/CANCELING run has no process left, and any claimed slot is stale.
    Returns the ids of the runs marked failed.
    """
    import dagster as dg

    in_progress = [
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        orphans = instance.get_runs(filters=dg.RunsFilter(statuses=in_progress))
        for run in orphans:
            instance.report_run_failed(
                run,
                message="stopped with efir-pipeline start: its worker was killed (a refresh "
                "in progress was rolled back; the view kept its previous contents)",
            )
        storage = instance.event_log_storage
        if storage.supports_global_concurrency_limits:
            for run_id in storage.get_concurrency_run_ids():
                storage.free_concurrency_slots_for_run(run_id)
    return [run.run_id for run in orphans]


def _report_orphans(home: Path) -> None:
    try:
        orphans = fail_orphaned_runs(home)
    except Exception as exc:  # bookkeeping only: never block start or stop on it
        print(f"warning: could not check for interrupted runs: {exc}", file=sys.stderr)
        return
    if orphans:
        print(
            f"marked {len(orphans)} interrupted run(s) as failed: {', '.join(orphans)}",
            file=sys.stderr,
        )


def launch(
    host: str, port: int, *, database_url: str, home: Path, **popen_kwargs
) -> subprocess.Popen:
    """Start ``dagster dev`` in a new session (its own process group).

    cwd is DAGSTER_HOME: ``dagster dev`` warns about a dagster.yaml in the working
    directory that is not DAGSTER_HOME's, which the repo root would trigger.
    """
    return subprocess.Popen(
        dagster_dev_command(host, port),
        cwd=home,
        env=child_env(database_url, home),
        start_new_session=True,
        **popen_kwargs,
    )


def graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 10.0):
    """POST a GraphQL query to the webserver and return ``data`` (raise on errors)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def location_status(base_url: str, location: str = LOCATION_NAME) -> tuple[str, str | None]:
    """(loadStatus, load error or None) of the code location; ('DOWN', None) if unreachable."""
    try:
        data = graphql(base_url, _LOCATION_QUERY, timeout=5.0)
    except (OSError, urllib.error.URLError, RuntimeError, ValueError):
        return "DOWN", None
    workspace = data["workspaceOrError"]
    for entry in workspace.get("locationEntries", []):
        if entry["name"] == location:
            loaded = entry.get("locationOrLoadError") or {}
            error = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
            return entry["loadStatus"], error
    return "LOADING", None


def wait_until_ready(
    base_url: str, proc: subprocess.Popen, timeout: float = READY_TIMEOUT_S
) -> float:
    """Seconds until the UI answers with the code location loaded.

    Raises EfirError if ``dagster dev`` exits first, the location fails to load, or
    ``timeout`` passes.
    """
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise EfirError(
                f"dagster dev exited with status {proc.returncode} before the UI came up"
            )
        status, error = location_status(base_url)
        if error:
            raise EfirError(f"the code location {LOCATION_NAME} failed to load: {error}")
        if status == "LOADED":
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise EfirError(f"the Dagster UI did not come up at {base_url} within {timeout:.0f}s")
        time.sleep(0.25)


def stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop ``dagster dev`` and everything in its process group.

    One SIGINT first (dagster dev then shuts the webserver, daemon and code servers
    down in order), SIGTERM to the group if that takes too long, and finally SIGKILL
    to whatever is left in the group (e.g. a run worker still refreshing: PostgreSQL
    rolls its refresh back and the previous contents stay readable).
    """
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        pass
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run(host: str, port: int, *, database_url: str, home: Path | None = None) -> int:
    """Run ``dagster dev`` until it exits or we are told to stop; return its exit status."""
    home = prepare_dagster_home(home)
    lock_fd = lock_dagster_home(home)
    _report_orphans(home)  # a previous start that was killed outright
    url = ui_url(host, port)
    print(f"DAGSTER_HOME={home}", file=sys.stderr)
    print(f"starting the Dagster UI at {url} ...", file=sys.stderr, flush=True)
    # Our own handlers, installed before the launch: a Python handler is reset to the
    # default in the child at exec, whereas an inherited SIG_IGN (e.g. `cmd &` in a
    # script) would make dagster dev deaf to the SIGINT that stops it in order.
    previous = {
        sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }

    def request_stop(signum, frame):
        raise _StopRequested

    for sig in previous:
        signal.signal(sig, request_stop)
    # dagster dev inherits the lock: an orphaned dagster dev still keeps the home taken.
    proc = launch(host, port, database_url=database_url, home=home, pass_fds=(lock_fd,))
    try:
        try:
            seconds = wait_until_ready(url, proc)
            print(
                f"Dagster UI ready in {seconds:.1f}s: {url}  (Ctrl-C stops it)",
                file=sys.stderr,
                flush=True,
            )
        except EfirError as exc:
            if proc.poll() is not None:
                raise
            # The UI is up and shows the error; fixing the code and reloading needs no restart.
            print(f"warning: {exc}; see {url}", file=sys.stderr, flush=True)
        return proc.wait()
    except (KeyboardInterrupt, _StopRequested):
        print("stopping Dagster ...", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig in previous:  # a second Ctrl-C during the stop: KeyboardInterrupt, stop kills
            signal.signal(sig, signal.default_int_handler)
        stop(proc)
        _report_orphans(home)
        os.close(lock_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("Dagster stopped.", file=sys.stderr, flush=True)
