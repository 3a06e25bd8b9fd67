"""The code location: what it holds, that Dagster's own validator accepts it, and that
loading it never depends on the database being up."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.settings import PROJECT_ROOT
from efir_pipeline.definitions import defs
from efir_pipeline.defs import assets, jobs, keys


@pytest.fixture
def db_url(dataset_url: str) -> str:
    """These tests read the random dataset (and never reset it)."""
    return dataset_url


def asset_graph():
    return defs.resolve_asset_graph()


def test_every_catalog_view_is_an_asset_reading_its_sources():
    graph = asset_graph()
    for view in catalog.VIEWS:
        node = graph.get(dg.AssetKey(view.name))
        assert node.group_name == "kpi_views"
        assert node.kinds == {"postgres"}
        assert assets.VIEW_ASSET_BY_NAME[view.name].op.pool == f"efir_{view.name}"
        expected = {dg.AssetKey(t) for t in view.source_tables}
        expected |= {dg.AssetKey(v) for v in view.depends_on}
        assert set(node.parent_keys) == expected


def test_source_tables_are_external_assets():
    graph = asset_graph()
    tables = {t for v in catalog.VIEWS for t in v.source_tables}
    for table in tables:
        node = graph.get(dg.AssetKey(table))
        assert node.is_external and not node.is_materializable
        assert node.group_name == "budget_sources"
    by_group: dict[str, set[dg.AssetKey]] = {}
    for key in graph.get_all_asset_keys():
        by_group.setdefault(graph.get(key).group_name, set()).add(key)
    assert by_group["budget_sources"] == {dg.AssetKey(t) for t in tables}
    assert by_group["kpi_views"] == {dg.AssetKey(v.name) for v in catalog.VIEWS}


def test_descriptions_come_from_the_catalog():
    graph = asset_graph()
    for view in catalog.VIEWS:
        description = graph.get(dg.AssetKey(view.name)).description
        assert view.description in description
        assert view.comment and view.comment in description


def test_catalog_comment_matches_the_database(db):
    """The catalog copy of each COMMENT (used at load time) must not drift from the migration."""
    for view in catalog.VIEWS:
        comment = db.execute(
            "SELECT obj_description(%s::regclass, 'pg_class')", (view.qualified_name,)
        ).fetchone()[0]
        assert comment == view.comment, view.name


def test_refresh_all_views_selects_every_view():
    job = defs.resolve_job_def(jobs.REFRESH_ALL_VIEWS)
    selected = {key for key in job.asset_layer.selected_asset_keys}
    assert selected == {keys.view_asset_key(v) for v in catalog.VIEWS}


def test_trigger_for_tags():
    assert assets.trigger_for({}) == "dagster"
    assert assets.trigger_for({"dagster/schedule_name": "nightly"}) == "schedule"
    assert assets.trigger_for({"dagster/sensor_name": "high"}) == "sensor"
    assert assets.trigger_for({"efir/trigger": "sensor:high", "dagster/sensor_name": "x"}) == (
        "sensor:high"
    )


@pytest.mark.parametrize("database", ["scratch", "unreachable"])
def test_dagster_definitions_validate(database, child_env):
    """`dagster definitions validate` passes, with the database up or down (loading
    definitions never connects)."""
    if database == "unreachable":
        child_env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/nowhere"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr
    assert time.monotonic() - started < 60
