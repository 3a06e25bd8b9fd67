"""Asset keys: a view's and a source table's, the one rule every module naming an asset uses.

The definitions, the events reported from the database, column lineage and provenance
tags must all name the same asset; a key built by hand in one of them would send its
events to an asset that does not exist.
"""

from __future__ import annotations

import dagster as dg

from efir_pipeline.core.catalog import ManagedView


def view_asset_key(view: ManagedView | str) -> dg.AssetKey:
    """``mv_kpi_dashboard``: the view's own name, so ``--select mv_kpi_dashboard`` works."""
    return dg.AssetKey(view if isinstance(view, str) else view.name)


def source_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table)
