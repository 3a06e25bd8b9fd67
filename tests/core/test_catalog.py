"""The catalog is the gate between user text and SQL identifiers."""

import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.errors import UnknownViewError


def test_names_resolve_in_refresh_order_whatever_the_input_order():
    names = [
        v.name
        for v in catalog.resolve_views(["mv_budget_consolidation", "efir_budget.mv_kpi_dashboard"])
    ]
    assert names == ["mv_kpi_dashboard", "mv_budget_consolidation"]


def test_no_names_means_every_view():
    assert {v.name for v in catalog.resolve_views([])} == set(catalog.view_names())


@pytest.mark.parametrize(
    "hostile",
    [
        "mv_kpi_dashboard; DROP TABLE efir_budget.budget_versions",
        'mv_kpi_dashboard"',
        "pg_catalog.pg_class",
        "public.mv_kpi_dashboard",
        "MV_KPI_DASHBOARD",
        "",
        "../etc/passwd",
    ],
)
def test_unknown_or_hostile_names_are_refused_with_the_known_list(hostile):
    with pytest.raises(UnknownViewError) as info:
        catalog.resolve_views(["mv_kpi_dashboard", hostile])
    message = str(info.value)
    for name in catalog.view_names():
        assert name in message
    assert info.value.exit_code == 2


def test_every_view_has_a_unique_key_and_sources():
    for view in catalog.VIEWS:
        assert view.unique_key and view.source_tables
        assert view.live_view.startswith("v_") and view.name.startswith("mv_")


def test_views_reading_a_table():
    assert [v.name for v in catalog.views_reading("budget_consolidations")] == [
        "mv_budget_consolidation"
    ]
    assert {v.name for v in catalog.views_reading("budget_versions")} >= {
        "mv_kpi_dashboard",
        "mv_budget_consolidation",
    }
