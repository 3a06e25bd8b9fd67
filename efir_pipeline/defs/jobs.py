"""Jobs over the view assets, generated from the catalog.

- ``refresh_all_views``: every managed view, dependencies first (the nightly schedule,
  the UI's "materialize all");
- ``refresh_changed_views``: what the change sensors launch, with an asset selection of
  the views their changes call for (the run's ``efir/views`` tag names them), so the
  run list tells a nightly refresh from a reaction to edits.

Dagster orders the steps by the asset graph (``depends_on`` first), the same order as
``efir-pipeline refresh``. Every job of the code location runs in one process
(``definitions.py`` sets the in-process executor): a step is one SQL call of a fraction
of a second, and a process per step cost seconds each.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from efir_pipeline.core.catalog import VIEWS, ManagedView
from efir_pipeline.defs.keys import view_asset_key

REFRESH_ALL_VIEWS = "refresh_all_views"
REFRESH_CHANGED_VIEWS = "refresh_changed_views"


def view_selection(views: Iterable[ManagedView] = VIEWS) -> dg.AssetSelection:
    """The asset selection of some catalog views (all by default)."""
    return dg.AssetSelection.assets(*(view_asset_key(v) for v in views))


refresh_all_views = dg.define_asset_job(
    name=REFRESH_ALL_VIEWS,
    selection=view_selection(),
    description="Refresh every managed materialized view, dependencies first, through the "
    "efir-pipeline refresh engine (one refresh per view at a time).",
)

refresh_changed_views = dg.define_asset_job(
    name=REFRESH_CHANGED_VIEWS,
    selection=view_selection(),
    description="Refresh the views whose source tables changed (launched by the change "
    "sensors with those views selected; tags efir/views, efir/reason, efir/changes).",
)

JOBS: list[dg.UnresolvedAssetJobDefinition] = [refresh_all_views, refresh_changed_views]
