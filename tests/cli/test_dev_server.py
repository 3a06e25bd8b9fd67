"""``efir-pipeline start`` and the instance configuration files.

The end-to-end test is the main job as a person does it: start the UI on a database
``prepare`` refreshed, find every view materialized, materialize ``mv_kpi_dashboard``
through GraphQL as the UI's button does and find the run in the refresh history;
refresh from psql and from the command line and see each once in Dagster; change a
version's status and see the high-priority sensor bring it to the dashboard; then stop
and leave no process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from efir_pipeline.cli import dev_server as dagster_dev
from efir_pipeline.core import catalog
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.settings import PROJECT_ROOT
from tests.support.factories import refresh_all

LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
POOL = """query($key: String) { instance { concurrencyLimit(concurrencyKey: $key) {
  limit usingDefaultLimit activeSlotCount } } }"""
MATERIALIZATIONS = """
{ assetNodes { assetKey { path }
    assetMaterializations(limit: 50) { runId
      metadataEntries { label ... on IntMetadataEntry { intValue } } } } }
"""
ASSETS_AND_JOBS = """
{ assetNodes { assetKey { path } groupName }
  repositoryOrError(repositorySelector: {repositoryName: "__repository__",
                                         repositoryLocationName: "efir_pipeline"}) {
    ... on Repository { jobs { name } } } }
"""


def refresh_log_ids(base: str) -> dict[str, list[int]]:
    """Per view asset, the history ids its materializations in Dagster carry."""
    found: dict[str, list[int]] = {}
    for node in dagster_dev.graphql(base, MATERIALIZATIONS)["assetNodes"]:
        ids = [
            entry["intValue"]
            for event in node["assetMaterializations"]
            for entry in event["metadataEntries"]
            if entry["label"] == "refresh_log_id"
        ]
        found["/".join(node["assetKey"]["path"])] = ids
    return found


def wait_for(what: str, condition, timeout: float = 60.0, every: float = 0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids whose environment has ``name=value`` (how we find what a start left behind)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_dagster_home_gets_the_repo_instance_file(tmp_path):
    home = dagster_dev.prepare_dagster_home(tmp_path / "dagster_home")
    assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()


def test_repo_instance_file_runs_without_a_server(tmp_path):
    """sqlite storage under DAGSTER_HOME, telemetry off, one refresh per pool."""
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert not instance.telemetry_enabled
        assert instance.get_runs() == []


def test_production_example_creates_a_working_instance(make_database, tmp_path, monkeypatch):
    """docs/examples/dagster.production.yaml, with its DAGSTER_PG_* variables, on a scratch db."""
    from urllib.parse import urlsplit

    url = make_database(migrated=False)
    parts = urlsplit(url)
    if not parts.hostname or parts.hostname.startswith("/"):
        pytest.skip("the example connects over TCP; this server is a unix socket")
    monkeypatch.setenv("DAGSTER_PG_USERNAME", parts.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", parts.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", parts.hostname)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(parts.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", parts.path.lstrip("/"))
    example = PROJECT_ROOT / "docs" / "examples" / "dagster.production.yaml"
    shutil.copyfile(example, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs() == []
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    with psycopg.connect(url) as c:
        assert c.execute("SELECT to_regclass('public.runs')").fetchone()[0] is not None


def test_workspace_loads_the_definitions_module():
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["module_name"] == "efir_pipeline.definitions"
    assert entry["python_module"]["location_name"] == dagster_dev.LOCATION_NAME


def test_a_second_start_on_the_same_home_is_refused(tmp_path):
    home = dagster_dev.prepare_dagster_home(tmp_path / "dagster_home")
    fd = dagster_dev.lock_dagster_home(home)
    try:
        with pytest.raises(ConfigError, match="another efir-pipeline start"):
            dagster_dev.check_home_free(home)
    finally:
        os.close(fd)
    dagster_dev.check_home_free(home)  # free again once the holder is gone


def test_runs_killed_with_dagster_are_failed_and_release_their_pool(tmp_path):
    """A run whose worker was killed keeps STARTED and its slot; with a pool limit of 1
    that view could never be refreshed again. start cleans that up."""
    from dagster._core.storage.dagster_run import DagsterRun

    home = dagster_dev.prepare_dagster_home(tmp_path / "dagster_home")
    pool = "efir_mv_kpi_dashboard"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        dead = instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED)
        )
        done = instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.SUCCESS)
        )
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(pool)
        storage.claim_concurrency_slot(pool, dead.run_id, "mv_kpi_dashboard")
        assert storage.get_concurrency_info(pool).active_slot_count == 1

    assert dagster_dev.fail_orphaned_runs(home) == [dead.run_id]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(done.run_id).status == dg.DagsterRunStatus.SUCCESS
        info = instance.event_log_storage.get_concurrency_info(pool)
        assert (info.slot_count, info.active_slot_count) == (1, 0)


def test_busy_port_is_refused_before_any_work():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ConfigError, match="--port"):
            dagster_dev.check_port_free("127.0.0.1", s.getsockname()[1])


def test_ui_url():
    assert dagster_dev.ui_url("127.0.0.1", 3000) == "http://127.0.0.1:3000"
    assert dagster_dev.ui_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert dagster_dev.ui_url("::1", 3000) == "http://[::1]:3000"


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_start_serves_the_ui_and_materializes_through_graphql(dataset_url, tmp_path, capsys):
    db_url = dataset_url
    refresh_all(db_url, trigger="prepare")  # what start's prepare step does
    port = free_port()
    data = tmp_path / "data"
    home = data / "dagster_home"
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DATABASE_URL=db_url, EFIR_DATA_DIR=str(data))
    env.pop("DAGSTER_HOME", None)
    log_path = tmp_path / "start.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "efir_pipeline.cli.main",
                "start",
                "--skip-prepare",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the finally below can kill it whole
        )
    leftovers: list[int] = []
    try:
        ui_seconds = dagster_dev.wait_until_ready(base, proc, timeout=120)

        data_ = dagster_dev.graphql(base, ASSETS_AND_JOBS)
        keys = {"/".join(n["assetKey"]["path"]) for n in data_["assetNodes"]}
        assert set(catalog.view_names()) <= keys
        assert {t for v in catalog.VIEWS for t in v.source_tables} <= keys
        jobs = {j["name"] for j in data_["repositoryOrError"]["jobs"]}
        assert {"refresh_all_views", "refresh_changed_views"} <= jobs

        # No view reads "Never materialized": prepare's refreshes are reported.
        views = set(catalog.view_names())
        wait_for(
            "every view to show a materialization",
            lambda: all(refresh_log_ids(base)[v] for v in views),
        )
        shown_seconds = time.monotonic() - started

        t0 = time.monotonic()
        launched = dagster_dev.graphql(
            base,
            LAUNCH,
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": dagster_dev.LOCATION_NAME,
                        "repositoryName": "__repository__",
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": ["mv_kpi_dashboard"]}],
                    },
                    "runConfigData": {},
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = None
        while time.monotonic() - t0 < 120:
            status = dagster_dev.graphql(base, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(0.25)
        run_seconds = time.monotonic() - t0
        assert status == "SUCCESS", log_path.read_text()[-4000:]

        with psycopg.connect(db_url) as c:
            rows = c.execute(
                """SELECT view_name, outcome, trigger FROM efir_budget.mv_refresh_log
                   WHERE run_id = %s""",
                (run_id,),
            ).fetchall()
        assert rows == [("mv_kpi_dashboard", "success", "dagster")]
        pool = dagster_dev.graphql(base, POOL, {"key": "efir_mv_kpi_dashboard"})
        pool = pool["instance"]["concurrencyLimit"]
        assert (pool["limit"], pool["usingDefaultLimit"]) == (1, True)
        assert pool["activeSlotCount"] == 0  # released after the run
        # A REFRESH in psql and one from the command line: each shows up once.
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY efir_budget.mv_enrollment_trends")
            (psql_id,) = c.execute(
                "SELECT max(id) FROM efir_budget.mv_refresh_log WHERE trigger = 'outside'"
            ).fetchone()
        cli = subprocess.run(
            [sys.executable, "-m", "efir_pipeline.cli.main", "refresh", "mv_workforce_utilization"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        with psycopg.connect(db_url) as c:
            (cli_id,) = c.execute(
                """SELECT max(id) FROM efir_budget.mv_refresh_log
                   WHERE view_name = 'mv_workforce_utilization' AND trigger = 'manual'"""
            ).fetchone()
        wait_for(
            "the psql and CLI refreshes in Dagster",
            lambda: (
                psql_id in (ids := refresh_log_ids(base))["mv_enrollment_trends"]
                and cli_id in ids["mv_workforce_utilization"]
            ),
        )
        time.sleep(12)  # two more ticks of the reporting sensor: nothing may come twice
        ids = refresh_log_ids(base)
        assert ids["mv_enrollment_trends"].count(psql_id) == 1, cli.stdout
        assert ids["mv_workforce_utilization"].count(cli_id) == 1

        # A status change: the high-priority sensor's run brings it to the dashboard.
        with psycopg.connect(db_url, autocommit=True) as c:
            version, status = c.execute(
                """SELECT budget_version_id, status::text FROM efir_budget.mv_kpi_dashboard
                   ORDER BY budget_version_id LIMIT 1"""
            ).fetchone()
            new = "superseded" if status != "superseded" else "working"
            c.execute(
                "UPDATE efir_budget.budget_versions SET status = %s WHERE id = %s", (new, version)
            )
            changed = time.monotonic()
            wait_for(
                "the status change on the dashboard",
                lambda: (
                    c.execute(
                        "SELECT status::text FROM efir_budget.mv_kpi_dashboard "
                        "WHERE budget_version_id = %s",
                        (version,),
                    ).fetchone()
                    == (new,)
                ),
                every=0.1,
            )
            landed_seconds = time.monotonic() - changed
            (trigger, by_run) = c.execute(
                """SELECT trigger, run_id IS NOT NULL FROM efir_budget.mv_refresh_log
                   WHERE view_name = 'mv_kpi_dashboard' AND outcome = 'success'
                   ORDER BY id DESC LIMIT 1"""
            ).fetchone()
        assert (trigger, by_run) == ("sensor:high", True)

        with capsys.disabled():
            print(
                f"\n[e2e] every view materialized {shown_seconds:.1f}s after start; "
                f"status change on the dashboard in {landed_seconds:.1f}s; "
                f"Dagster UI up (code location loaded) in {ui_seconds:.1f}s; "
                f"mv_kpi_dashboard materialized via GraphQL in {run_seconds:.1f}s end to end "
                f"(launch -> SUCCESS); {time.monotonic() - started:.1f}s since start"
            )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does: start stops dagster dev
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        # What the orderly stop left behind, then the hard way for anything left.
        leftovers = processes_with_env("DAGSTER_HOME", str(home))
        groups = {proc.pid}
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(pid))
        for pgid in groups - {os.getpgrp()}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    assert proc.returncode == 0, log_path.read_text()[-4000:]
    assert leftovers == [], f"processes left behind: {leftovers}"
    assert "Dagster UI ready" in log_path.read_text()
