"""The catalog's ``depends_on`` is what PostgreSQL records in pg_depend.

So the refresh order (``catalog.resolve_views``) and the Dagster asset graph, both
built from ``depends_on``, cannot drift from the views' actual queries.
"""

from __future__ import annotations

from dataclasses import replace

import psycopg

from efir_pipeline.core import catalog
from efir_pipeline.core.db.dependencies import dependency_drift, view_dependencies


def test_catalog_depends_on_equals_pg_depend(conn):
    found = view_dependencies(conn)
    declared = {v.name: set(v.depends_on) for v in catalog.VIEWS}
    assert found == declared
    assert found["mv_financial_ratios"] == {"mv_kpi_dashboard"}
    assert dependency_drift(conn) == []


def test_refresh_order_puts_the_dashboard_before_the_ratios():
    for names in (None, ["mv_financial_ratios", "mv_kpi_dashboard"]):
        order = [v.name for v in catalog.resolve_views(names)]
        assert order.index("mv_kpi_dashboard") < order.index("mv_financial_ratios"), order
    # Asking for the ratios alone does not drag the dashboard in (the caller chose).
    assert [v.name for v in catalog.resolve_views(["mv_financial_ratios"])] == [
        "mv_financial_ratios"
    ]
    # A change to a dashboard table makes both stale.
    assert {"mv_kpi_dashboard", "mv_financial_ratios"} <= {
        v.name for v in catalog.views_reading("capex_plans")
    }


def test_walks_through_plain_views_and_stops_at_materialized_ones(conn):
    """mv_a reads mv_budget_consolidation through two plain views; mv_b reads mv_a (and
    so only mv_a: mv_budget_consolidation is mv_a's own refresh step). Rolled back."""
    with conn.transaction():
        conn.execute(
            "CREATE VIEW efir_budget.v_dep_inner AS "
            "SELECT budget_version_id, account_code FROM efir_budget.mv_budget_consolidation"
        )
        conn.execute("CREATE VIEW efir_budget.v_dep_outer AS SELECT * FROM efir_budget.v_dep_inner")
        conn.execute(
            "CREATE MATERIALIZED VIEW efir_budget.mv_dep_a AS "
            "SELECT o.*, k.total_students FROM efir_budget.v_dep_outer o "
            "JOIN efir_budget.budget_versions v ON v.id = o.budget_version_id "
            "LEFT JOIN efir_budget.mv_kpi_dashboard k ON k.budget_version_id = v.id"
        )
        conn.execute(
            "CREATE MATERIALIZED VIEW efir_budget.mv_dep_b AS "
            "SELECT count(*) FROM efir_budget.mv_dep_a"
        )
        found = view_dependencies(conn)
        assert found["mv_dep_a"] == {"mv_budget_consolidation", "mv_kpi_dashboard"}
        assert found["mv_dep_b"] == {"mv_dep_a"}
        assert found["mv_financial_ratios"] == {"mv_kpi_dashboard"}
        drift = dependency_drift(conn)
        assert "mv_dep_a: materialized view not in the catalog" in drift
        raise psycopg.Rollback
    assert set(view_dependencies(conn)) == set(catalog.view_names())


def test_drift_is_reported(conn, monkeypatch):
    """A catalog that forgot a dependency is caught."""
    forgetful = tuple(
        replace(v, depends_on=()) if v.name == "mv_financial_ratios" else v for v in catalog.VIEWS
    )
    monkeypatch.setattr("efir_pipeline.core.db.dependencies.VIEWS", forgetful)
    (problem,) = dependency_drift(conn)
    assert problem.startswith("mv_financial_ratios: catalog depends_on []")
    assert "mv_kpi_dashboard" in problem


def test_result_covers_every_materialized_view(conn):
    names = {
        n
        for (n,) in conn.execute(
            "SELECT matviewname::text FROM pg_matviews WHERE schemaname = 'efir_budget'"
        ).fetchall()
    }
    assert set(view_dependencies(conn)) == names == set(catalog.view_names())
