"""View assets materialized in process against a real scratch database.

Every figure the materialization reports is checked against PostgreSQL itself and
against the refresh history row carrying the Dagster run id.
"""

from __future__ import annotations

import re
import uuid

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult
from efir_pipeline.defs import assets
from efir_pipeline.defs.resources import PostgresResource

VIEW_NAMES = catalog.view_names()
# PostgreSQL < 17: "must be owner of materialized view"; 17+ (MAINTAIN): "permission denied for"
NOT_ALLOWED = re.compile(
    r"must be owner of materialized view|permission denied for materialized view"
)


@pytest.fixture
def db_url(dataset_url: str) -> str:
    """These tests read the random dataset (and never reset it)."""
    return dataset_url


def materialize(view_name: str, postgres: PostgresResource, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*assets.SOURCE_SPECS, assets.VIEW_ASSET_BY_NAME[view_name]],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"postgres": postgres},
        **kwargs,
    )


def history(db: psycopg.Connection, run_id: str, view_name: str) -> list[tuple]:
    return db.execute(
        """SELECT id, outcome, trigger, row_count, size_bytes, ran_concurrently, duration_seconds, error
           FROM efir_budget.mv_refresh_log WHERE run_id = %s AND view_name = %s ORDER BY id""",
        (run_id, view_name),
    ).fetchall()


def metadata_of(result: dg.ExecuteInProcessResult, view_name: str) -> dict:
    (event,) = result.asset_materializations_for_node(view_name)
    return {k: v.value for k, v in event.metadata.items()}


@pytest.mark.parametrize("view_name", VIEW_NAMES)
def test_materialization_reports_what_the_database_holds(view_name, postgres, db):
    view = catalog.get_view(view_name)
    result = materialize(view_name, postgres)
    assert result.success

    meta = metadata_of(result, view_name)
    count, size = db.execute(
        sql.SQL("SELECT (SELECT count(*) FROM {}), pg_total_relation_size({})").format(
            sql.Identifier(catalog.SCHEMA, view.name), sql.Literal(view.qualified_name)
        )
    ).fetchone()
    assert count > 0, "the fixture data should give every view rows"
    assert meta["dagster/row_count"] == count
    assert meta["dagster/table_name"] == view.qualified_name
    assert meta["size_bytes"] == size
    assert meta["duration_seconds"] > 0
    assert meta["concurrently"] is True  # the migration populated the view
    assert meta["outcome"] == "success"
    assert meta["trigger"] == "dagster"
    columns = [c.name for c in meta["dagster/column_schema"].columns]
    assert list(view.unique_key) == [c for c in columns if c in view.unique_key]

    (row,) = history(db, result.run_id, view_name)
    log_id, outcome, trigger, row_count, size_bytes, concurrently, duration, error = row
    assert meta["refresh_log_id"] == log_id
    assert (outcome, trigger, row_count, size_bytes, concurrently, error) == (
        "success",
        "dagster",
        count,
        size,
        True,
        None,
    )
    assert meta["duration_seconds"] == pytest.approx(duration)


def test_refresh_all_views_job_runs_every_view_once(postgres, db):
    from efir_pipeline.definitions import defs

    job = defs.resolve_job_def("refresh_all_views")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"postgres": postgres},
        tags={"efir/trigger": "schedule:nightly"},
    )
    assert result.success
    rows = db.execute(
        "SELECT view_name, trigger, outcome FROM efir_budget.mv_refresh_log WHERE run_id = %s ORDER BY id",
        (result.run_id,),
    ).fetchall()
    assert sorted(rows) == sorted((v, "schedule:nightly", "success") for v in VIEW_NAMES)
    # dependency order: every view after the views it depends on
    order = [r[0] for r in rows]
    for view in catalog.VIEWS:
        for dep in view.depends_on:
            assert order.index(dep) < order.index(view.name)


def test_trigger_comes_from_the_run_tag(postgres, db):
    result = materialize("mv_kpi_dashboard", postgres, tags={"efir/trigger": "sensor:high"})
    assert metadata_of(result, "mv_kpi_dashboard")["trigger"] == "sensor:high"
    ((_, _, trigger, *_),) = history(db, result.run_id, "mv_kpi_dashboard")
    assert trigger == "sensor:high"


def test_never_populated_view_is_refreshed_plainly(postgres, db):
    db.execute("REFRESH MATERIALIZED VIEW efir_budget.mv_budget_consolidation WITH NO DATA")
    result = materialize("mv_budget_consolidation", postgres)
    meta = metadata_of(result, "mv_budget_consolidation")
    assert meta["concurrently"] is False
    assert meta["dagster/row_count"] > 0


def test_coalesced_refresh_is_described_by_the_refresh_that_covered_it(postgres, db, db_url):
    """A request served by a newer refresh has no figures of its own: that refresh's."""
    view = catalog.get_view("mv_kpi_dashboard")
    covering = refresh_view(view, url=db_url)
    coalesced = RefreshResult(
        view.name, "coalesced", 42, None, None, None, 0.5, 0.0, None, None, None
    )
    result = assets.materialize_result(postgres, view, coalesced, "dagster")
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    count = db.execute("SELECT count(*) FROM efir_budget.mv_kpi_dashboard").fetchone()[0]
    assert meta["dagster/row_count"] == count
    assert meta["size_bytes"] > 0
    assert (meta["outcome"], meta["refresh_log_id"]) == ("coalesced", 42)
    assert meta["covered_by_refresh_log_id"] == covering.log_id
    assert "dagster/column_schema" in meta
    assert result.data_version is not None


def test_details_of_a_committed_refresh_are_best_effort(db_url):
    """The refresh is committed and recorded: unreadable details cost metadata, not the run."""
    view = catalog.get_view("mv_kpi_dashboard")
    done = RefreshResult(view.name, "success", 7, None, None, None, 0.0, 0.1, True, 12, 4096)
    gone = PostgresResource(database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    meta = assets.materialize_result(gone, view, done, "dagster").metadata
    assert meta["dagster/row_count"].value == 12
    assert meta["refresh_log_id"].value == 7
    assert "dagster/column_schema" not in meta


def test_transient_failure_is_retried_then_fails_clearly(db_url, db):
    """A lock the refresh cannot get within lock_timeout: retried, then a clear Failure."""
    postgres = PostgresResource(
        database_url=db_url, lock_timeout="150ms", transient_retries=1, retry_wait_seconds=0
    )
    with psycopg.connect(db_url) as blocker:  # holds the lock until the block ends
        blocker.execute("LOCK TABLE efir_budget.budget_versions IN ACCESS EXCLUSIVE MODE")
        result = materialize("mv_kpi_dashboard", postgres, raise_on_error=False)
    assert not result.success

    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.user_failure_data
    assert "lock timeout" in error.description
    assert "retries exhausted" in error.description
    assert error.metadata["attempts"].value == 2
    assert error.metadata["transient"].value is True
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)

    rows = history(db, result.run_id, "mv_kpi_dashboard")
    assert [r[1] for r in rows] == ["failed", "failed"]
    assert all("lock timeout" in r[7] for r in rows)
    assert error.metadata["refresh_log_id"].value == rows[-1][0]


@pytest.fixture
def unprivileged_url(db_url: str, db: psycopg.Connection):
    """The scratch database as a role that may read and log but does not own the views."""
    role = f"efir_test_norefresh_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA efir_budget TO {}").format(ident))
    db.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA efir_budget TO {}").format(ident))
    db.execute(sql.SQL("GRANT INSERT ON efir_budget.mv_refresh_log TO {}").format(ident))
    db.execute(sql.SQL("GRANT UPDATE ON efir_budget.refresh_state TO {}").format(ident))
    separator = "&" if "?" in db_url else "?"
    try:
        yield f"{db_url}{separator}options=-c%20role%3D{role}"
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        db.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_permanent_failure_fails_at_once_and_is_recorded(unprivileged_url, db):
    postgres = PostgresResource(database_url=unprivileged_url, retry_wait_seconds=0)
    result = materialize("mv_kpi_dashboard", postgres, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.user_failure_data
    assert NOT_ALLOWED.search(error.description), error.description
    assert error.metadata["attempts"].value == 1
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)

    ((log_id, outcome, trigger, *_rest, message),) = history(db, result.run_id, "mv_kpi_dashboard")
    assert (outcome, trigger) == ("failed", "dagster")
    assert NOT_ALLOWED.search(message)
    assert error.metadata["refresh_log_id"].value == log_id


def test_unreachable_database_fails_the_step_with_the_reason():
    postgres = PostgresResource(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere", transient_retries=0
    )
    result = materialize("mv_kpi_dashboard", postgres, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "cannot reach PostgreSQL at 127.0.0.1:1/nowhere" in (
        failure.step_failure_data.user_failure_data.description
    )
