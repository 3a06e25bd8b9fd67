"""What a view's asset carries besides its refresh: code version, code links, column
lineage (held to what PostgreSQL says the view reads), freshness policy, owners; and
the observable source tables."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.definitions import defs
from efir_pipeline.defs import annotations, assets
from efir_pipeline.defs.resources import PostgresResource

RATIOS = catalog.get_view("mv_financial_ratios")


def spec(view: catalog.ManagedView) -> dg.AssetSpec:
    return defs.resolve_assets_def(view.name).specs_by_key[dg.AssetKey(view.name)]


def test_the_code_version_follows_the_migration_text(tmp_path, monkeypatch):
    view = catalog.get_view("mv_kpi_dashboard")
    copy = tmp_path / f"{view.defined_in}.py"
    shutil.copy(annotations.migration_file(view), copy)
    monkeypatch.setattr(annotations, "MIGRATIONS", tmp_path)
    annotations.code_version.cache_clear()
    try:
        before = annotations.code_version(view)
        copy.write_text(copy.read_text() + "\n# a redefinition\n")
        annotations.code_version.cache_clear()
        assert annotations.code_version(view) != before
        assert before.startswith("0004_views:")
    finally:
        annotations.code_version.cache_clear()


@pytest.mark.parametrize("view", catalog.VIEWS, ids=lambda v: v.name)
def test_every_view_asset_links_its_sql_and_catalog_entry(view):
    asset = spec(view)
    assert asset.code_version == annotations.code_version(view)
    refs = asset.metadata["dagster/code_references"].code_references
    assert [r.label for r in refs] == [f"SQL: migration {view.defined_in}", "catalog entry"]
    assert all(r.line_number for r in refs), "a link without its line"
    assert asset.owners == ["team:efir-budget"]
    assert asset.freshness_policy is not None


def test_column_lineage_matches_what_postgresql_says_the_view_reads(dataset_url):
    import psycopg

    with psycopg.connect(dataset_url) as c:
        read = {
            name
            for (name,) in c.execute(
                """SELECT DISTINCT a.attname
                   FROM pg_rewrite r
                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE r.ev_class = 'efir_budget.v_financial_ratios'::regclass
                     AND d.refobjid = 'efir_budget.mv_kpi_dashboard'::regclass"""
            )
        }
        columns = {
            name
            for (name,) in c.execute(
                """SELECT attname FROM pg_attribute
                   WHERE attrelid = 'efir_budget.mv_financial_ratios'::regclass AND attnum > 0"""
            )
        }
    declared = dict(RATIOS.column_lineage)
    assert set(declared) <= columns
    assert {c for sources in declared.values() for c in sources} == read
    lineage = spec(RATIOS).metadata["dagster/column_lineage"]
    assert lineage.deps_by_column["total_cost_per_student_sar"][0].asset_key == dg.AssetKey(
        "mv_kpi_dashboard"
    )


def test_source_tables_can_be_observed_from_the_ui(dataset_url):
    observe = dg.define_asset_job(
        "observe", selection=dg.AssetSelection.assets(*assets.SOURCE_ASSETS.keys)
    )
    job = dg.Definitions(
        assets=[assets.SOURCE_ASSETS],
        jobs=[observe],
        resources={"postgres": PostgresResource(database_url=dataset_url)},
    ).resolve_job_def("observe")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    observed = {
        e.event_specific_data.asset_observation.asset_key.path[-1]
        for e in result.get_asset_observation_events()
    }
    assert observed == set(assets.source_tables())
