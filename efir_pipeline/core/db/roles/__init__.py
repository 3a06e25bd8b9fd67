"""Least-privilege PostgreSQL roles: the pipeline, the dashboards, the budget app, and
the capture role nobody logs in as.

Why separate roles: each client gets exactly what its job needs, so a leaked dashboard
password cannot change a budget, the budget app cannot stall or drop a view, and the
refresh history can only be written by the pipeline. On the budget app's own database
the design touches only what the pipeline made and the tables the views read.

Why the pipeline *owns* the views: PostgreSQL 15 lets only the owner run ``REFRESH
MATERIALIZED VIEW`` (the ``MAINTAIN`` privilege arrives in 17). A materialized view
runs its query with its owner's rights, hence the pipeline's SELECT on source tables.

Why change capture keeps working for the app: the trigger functions are ``SECURITY
DEFINER`` with a fixed ``search_path``; owned by the capture role, they insert into
``change_log`` with its right to, while the app has no privilege on ``change_log`` and
the pipeline cannot drop or alter them (:mod:`.design` says why).

Objects are found by introspection of schema ``efir_budget`` and classified with the
catalog and the lists of :mod:`.design`, so a view or table added by a later migration
is covered the next time ``efir-pipeline db roles`` runs (run it after every upgrade).
"""

from efir_pipeline.core.db.roles.design import (
    DASHBOARD_VIEWS,
    LIVE_VIEW,
    MANAGED_VIEW,
    PIPELINE_FUNCTIONS,
    PIPELINE_TABLE,
    PIPELINE_TABLES,
    PIPELINE_VIEW,
    PIPELINE_VIEWS,
    SOURCE,
    catalog_live_views,
    category_of,
    intended_privileges,
    pipeline_tables,
    source_tables,
)
from efir_pipeline.core.db.roles.inventory import Function, Inventory, Relation, inspect
from efir_pipeline.core.db.roles.matrix import intended_matrix, privilege_matrix
from efir_pipeline.core.db.roles.names import KINDS, ROLE_ENV, RoleNames
from efir_pipeline.core.db.roles.script import Script, Statement, apply, build_script

__all__ = [
    "DASHBOARD_VIEWS",
    "KINDS",
    "LIVE_VIEW",
    "MANAGED_VIEW",
    "PIPELINE_FUNCTIONS",
    "PIPELINE_TABLE",
    "PIPELINE_TABLES",
    "PIPELINE_VIEW",
    "PIPELINE_VIEWS",
    "ROLE_ENV",
    "SOURCE",
    "Function",
    "Inventory",
    "Relation",
    "RoleNames",
    "Script",
    "Statement",
    "apply",
    "build_script",
    "catalog_live_views",
    "category_of",
    "inspect",
    "intended_matrix",
    "intended_privileges",
    "pipeline_tables",
    "privilege_matrix",
    "source_tables",
]
