"""Jobs over the view assets, generated from the catalog.

``refresh_all_views`` is what the nightly schedule and the sensors target: it selects
every managed view, and Dagster orders the steps by the asset graph (``depends_on``
first), the same order as ``efir-pipeline refresh``. A sensor that needs only some
views launches this job with an ``asset_selection`` of them.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from efir_pipeline.core.catalog import VIEWS, ManagedView
from efir_pipeline.defs.assets import view_asset_key

REFRESH_ALL_VIEWS = "refresh_all_views"


def view_selection(views: Iterable[ManagedView] = VIEWS) -> dg.AssetSelection:
    """The asset selection of some catalog views (all by default)."""
    return dg.AssetSelection.assets(*(view_asset_key(v) for v in views))


refresh_all_views = dg.define_asset_job(
    name=REFRESH_ALL_VIEWS,
    selection=view_selection(),
    description="Refresh every managed materialized view, dependencies first, through the "
    "efir-pipeline refresh engine (one refresh per view at a time).",
)

JOBS: list[dg.UnresolvedAssetJobDefinition] = [refresh_all_views]
