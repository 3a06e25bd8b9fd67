"""The production examples of docs/deploy.md load and agree with each other, so they never rot.

- ``dagster instance info`` (the real CLI) loads docs/examples/dagster.production.yaml
  against the local PostgreSQL, creates Dagster's tables and reports them current;
- the one-URL variant (``postgresql+psycopg2://``) works too;
- the gRPC workspace serves the code location from a real ``dagster code-server``;
- the Docker and Kubernetes variants keep the production instance's settings, the env
  template names every setting the code reads, and the systemd units start commands
  and files that exist.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml

from efir_pipeline.core.db.urls import with_driver
from efir_pipeline.core.settings import PROJECT_ROOT, specs

EXAMPLES = PROJECT_ROOT / "docs" / "examples"
PRODUCTION = EXAMPLES / "dagster.production.yaml"
BIN = Path(sys.executable).parent


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def env_refs(node) -> set[str]:
    """Every ``{env: NAME}`` in a Dagster config tree."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    return set()


@pytest.fixture
def storage_env(make_database) -> dict[str, str]:
    """DAGSTER_PG_* of a fresh scratch database (Dagster creates its tables in it)."""
    url = make_database(migrated=False)
    parts = urlsplit(url)
    if not parts.hostname or parts.hostname.startswith("/"):
        pytest.skip("the example connects over TCP; this server is a unix socket")
    return {
        "DAGSTER_PG_USERNAME": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_HOST": parts.hostname,
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
        "_URL": url,
    }


def dagster_cli(*args: str, home: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, **{k: v for k, v in env.items() if not k.startswith("_")}}
    environment["DAGSTER_HOME"] = str(home)
    return subprocess.run(
        [str(BIN / "dagster"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
    )


def test_dagster_instance_info_loads_the_production_example(storage_env, tmp_path):
    (tmp_path / "dagster.yaml").write_text(PRODUCTION.read_text())
    info = dagster_cli("instance", "info", home=tmp_path, env=storage_env)
    assert info.returncode == 0, info.stderr
    for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
        assert storage in info.stdout
    schema = info.stdout.split("Storage schema state:", 1)[1]
    revisions = yaml.safe_load(schema.strip().strip("-"))["schema"]
    assert all(r["current"] == r["latest"] for r in revisions.values()), revisions

    # The upgrade step of docs/deploy.md runs on it (a no-op when current).
    migrate = dagster_cli("instance", "migrate", home=tmp_path, env=storage_env)
    assert migrate.returncode == 0, migrate.stderr


def test_the_instance_has_the_queue_pools_and_run_monitoring(storage_env, tmp_path, monkeypatch):
    for name, value in storage_env.items():
        if not name.startswith("_"):
            monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text(PRODUCTION.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_monitoring_max_runtime_seconds > 0
        assert not instance.run_retries_enabled
        assert not instance.telemetry_enabled


def test_one_url_with_the_psycopg2_scheme_works_too(storage_env, tmp_path, monkeypatch):
    config = load(PRODUCTION)
    config["storage"] = {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    url = with_driver(storage_env["_URL"], "psycopg2")
    assert url.startswith("postgresql+psycopg2://")
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(240)
def test_the_grpc_workspace_loads_the_code_location_from_a_code_server(db_url, tmp_path):
    """The systemd layout: a code server, and a workspace that points at it."""
    unit = units()["efir-code-server.service"]
    command = shlex.split(unit["Service"]["ExecStart"])
    workspace = load(EXAMPLES / "workspace.grpc.yaml")
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert command[command.index("-p") + 1] == str(server["port"])
    assert command[command.index("--location-name") + 1] == server["location_name"]

    port = free_port()
    command[command.index("-p") + 1] = str(port)
    command[0] = str(BIN / Path(command[0]).name)
    server["port"] = port
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    env = {**os.environ, "DATABASE_URL": db_url, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        validate = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the code server exited: {proc.stderr.read()[-2000:]}")
            validate = subprocess.run(
                [
                    str(BIN / "dagster"),
                    "definitions",
                    "validate",
                    "-w",
                    str(tmp_path / "workspace.yaml"),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            if validate.returncode == 0:
                break
            time.sleep(2)
        assert validate is not None and validate.returncode == 0, validate.stderr[-2000:]
        assert "efir_pipeline" in validate.stdout + validate.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_docker_instance_is_the_production_one_plus_the_docker_launcher():
    production = load(PRODUCTION)
    docker = load(EXAMPLES / "docker" / "dagster.yaml")
    launcher = docker.pop("run_launcher")
    docker.pop("compute_logs")
    assert docker == production
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    # Run containers need the storage and budget database settings.
    assert env_refs(production) | {"DATABASE_URL"} <= set(launcher["config"]["env_vars"])


def test_docker_instance_loads_where_dagster_docker_is_installed(
    storage_env, tmp_path, monkeypatch
):
    pytest.importorskip("dagster_docker")
    for name, value in storage_env.items():
        if not name.startswith("_"):
            monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text((EXAMPLES / "docker" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_launcher.supports_check_run_worker_health


def test_compose_services_agree_with_the_image_and_the_workspace():
    compose = load(EXAMPLES / "docker" / "docker-compose.yaml")
    services = compose["services"]
    assert {"efir_code", "efir_webserver", "efir_daemon", "efir_migrate"} <= set(services)
    workspace = load(EXAMPLES / "docker" / "workspace.yaml")
    (entry,) = workspace["load_from"]
    code = services["efir_code"]["command"]
    assert entry["grpc_server"]["host"] == "efir_code"
    assert code[code.index("-p") + 1] == str(entry["grpc_server"]["port"])
    assert code[code.index("--location-name") + 1] == entry["grpc_server"]["location_name"]
    migrate = " ".join(services["efir_migrate"]["command"])
    assert "efir-pipeline db upgrade" in migrate and "efir-pipeline db roles" in migrate
    assert services["efir_code"]["environment"]["DAGSTER_CURRENT_IMAGE"]
    env_file = (EXAMPLES / "docker" / services["efir_code"]["env_file"]).resolve()
    assert env_file == PROJECT_ROOT / "efir.env"  # the filled-in copy of the template
    for service in services.values():  # secrets only by reference, never literal
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or key.endswith("_URL"):
                assert str(value).startswith("${"), key
    dockerfile = (EXAMPLES / "docker" / "Dockerfile").read_text()
    assert "dagster.yaml" in dockerfile and "workspace.yaml" in dockerfile
    pins = re.findall(r"dagster-docker==([\d.]+)", dockerfile)
    import dagster_postgres

    assert pins == [dagster_postgres.__version__], "dagster-docker must match dagster-postgres"


def test_helm_values_mirror_the_production_limits():
    production = load(PRODUCTION)
    values = load(EXAMPLES / "k8s" / "values.yaml")
    monitoring = production["run_monitoring"]
    helm_monitoring = values["dagsterDaemon"]["runMonitoring"]
    for key, value in monitoring.items():
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
        assert helm_monitoring[camel] == value, key
    concurrency = production["concurrency"]
    assert values["concurrency"]["pools"]["defaultLimit"] == concurrency["pools"]["default_limit"]
    runs = values["concurrency"]["runs"]
    assert runs["maxConcurrentRuns"] == concurrency["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == concurrency["runs"]["tag_concurrency_limits"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert (
        values["retention"]["sensor"]["purgeAfterDays"]
        == production["retention"]["sensor"]["purge_after_days"]
    )
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "efir_pipeline.definitions"]


def template_settings() -> tuple[set[str], set[str]]:
    """(required, optional) names of docs/examples/efir.env.example (``#NAME=``: optional)."""
    required, optional = set(), set()
    for line in (EXAMPLES / "efir.env.example").read_text().splitlines():
        if match := re.match(r"^(#?)([A-Z][A-Z0-9_]*)=", line):
            (optional if match.group(1) else required).add(match.group(2))
    return required, optional


def test_env_template_names_every_setting_and_nothing_stale():
    required, optional = template_settings()
    assert env_refs(load(PRODUCTION)) | {"DATABASE_URL", "DAGSTER_HOME"} <= required
    documented = {n for n in required | optional if n.startswith("EFIR_")} | {"DATABASE_URL"}
    assert documented == {spec.env for spec in specs()}


def test_only_the_settings_module_reads_the_environment():
    """Process plumbing aside (a child process's environment), settings are read once."""
    copying = re.compile(r"dict\(os\.environ\)|\*\*os\.environ")  # a child's environment
    readers = {
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "efir_pipeline").rglob("*.py")
        if re.search(r"os\.environ|os\.getenv", copying.sub("", path.read_text()))
    }
    assert readers == {"efir_pipeline/core/settings.py"}


def units() -> dict[str, configparser.ConfigParser]:
    parsed = {}
    for path in sorted((EXAMPLES / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(path.read_text())
        parsed[path.name] = parser
    return parsed


def test_systemd_units_start_installed_commands_on_files_that_exist():
    found = units()
    assert set(found) == {
        "efir-code-server.service",
        "efir-dagster-webserver.service",
        "efir-dagster-daemon.service",
    }
    for name, unit in found.items():
        service = unit["Service"]
        command = shlex.split(service["ExecStart"])
        assert (BIN / Path(command[0]).name).exists(), f"{name}: {command[0]} is not installed"
        assert service["EnvironmentFile"] == "/etc/efir-pipeline/efir.env"
        if "-w" in command:  # relative to WorkingDirectory, the repository checkout
            assert (PROJECT_ROOT / command[command.index("-w") + 1]).exists(), name
        assert service["Restart"] == "always"
